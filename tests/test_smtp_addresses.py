"""The listener reads MAIL and RCPT addresses exactly as aiosmtpd does, only faster.

`CanarySMTP._getaddr` reads the plain `<local@domain>` with a regular
expression and hands everything else to aiosmtpd's parser. Whatever the
argument, plain or hostile, both must give the same address and the same
rest, and the same refusal (None) of a local part over the limit. (Where
aiosmtpd's parser itself fails, on a lone `<` or on `0@[`, the listener
refuses the address as malformed.)
"""

from __future__ import annotations

import string

from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtp_listener.handler import PLAIN_PATH, CanarySMTP

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
atoms = st.text(ATEXT, min_size=1, max_size=12)
labels = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=10)
plain = st.builds(lambda local, domain: f"{'.'.join(local)}@{'.'.join(domain)}",
                  st.lists(atoms, min_size=1, max_size=3), st.lists(labels, min_size=1, max_size=3))
rests = st.sampled_from(["", " SIZE=1234", " BODY=8BITMIME SMTPUTF8", "  ", " NOTIFY=NEVER"])
hostile = st.text(ATEXT + "<>@.\"\\ ()[]:;,é\x00\t", max_size=40)
arguments = st.one_of(
    st.builds(lambda address, rest: f"<{address}>{rest}", plain, rests),
    st.builds(lambda address, rest, junk: f"<{address}{junk}>{rest}", plain, rests, hostile),
    st.builds(lambda junk, address: f"{junk}<{address}>", hostile, plain),
    hostile,
)


def listener(local_part_limit: int) -> CanarySMTP:
    """A CanarySMTP for calling `_getaddr` alone (it reads only the local part limit)."""
    protocol = CanarySMTP.__new__(CanarySMTP)
    protocol.local_part_limit = local_part_limit
    return protocol


@settings(max_examples=600, deadline=None, derandomize=True)  # the same cases in every run
@given(arguments, st.sampled_from([0, 8, 64]))
@example("<news@acme.example> SIZE=10", 0)
@example("<news@acme.example>\t (a comment) SIZE=10", 0)
@example("<news@acme.example>\tSIZE=10", 0)
@example("<a..b@acme.example>", 0)
@example("<.a@acme.example>", 0)
@example("<a@acme..example>", 0)
@example('<"quoted local"@acme.example>', 0)
@example("<@route.example:a@acme.example>", 0)
@example("<a@[192.0.2.1]>", 0)
@example("<a(comment)@acme.example>", 0)
@example("<a@acme.example", 0)
@example("a@acme.example>", 0)
@example("<averyverylonglocalpart@acme.example>", 8)
@example("<", 0)
@example("0@[", 0)
def test_an_address_reads_as_aiosmtpd_reads_it(argument: str, limit: int) -> None:
    protocol = listener(limit)
    try:
        expected = SMTP._getaddr(protocol, argument)
    except Exception:  # aiosmtpd's parser fails on some input ("<", "0@["): the listener
        expected = (None, None)  # answers 553, malformed
    assert protocol._getaddr(argument) == expected


def test_plain_addresses_take_the_fast_way() -> None:
    """So the test above compares both ways, not aiosmtpd's with itself."""
    assert PLAIN_PATH.match("<news@acme.example> SIZE=10")
    assert PLAIN_PATH.match("<o'brien+tag@mail.acme-shop.example>")
    for other in ("<a..b@acme.example>", '<"x"@acme.example>', "<a@[192.0.2.1]>", "<>",
                  "news@acme.example", " <news@acme.example>"):
        assert PLAIN_PATH.match(other) is None, other

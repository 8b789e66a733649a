"""The delivery rules of `canary.delivery`, as plain functions: no server, no socket.

Destination URLs (what is accepted, what is refused and how the refusal reads),
the policy (deliver, tag or hold per relation and per company), the labels
Canary prepends (exact names and order, one line each, nothing injectable), the
removal of forged labels, the retry schedule, and the `[delivery]` section of
canary.toml written by `init_home` and read back by `Home.config()`.
"""

from __future__ import annotations

import math
import stat
import tomllib
from datetime import timedelta
from email.header import decode_header, make_header
from pathlib import Path

import authres
import pytest

from canary.authentication import (
    ArcResult,
    Authentication,
    DkimResult,
    DmarcResult,
    Result,
    SpfResult,
)
from canary.delivery import (
    DEFAULT_ACTIONS,
    FIRST_RETRY,
    LONGEST_RETRY,
    Action,
    DeliveryConfig,
    DeliveryPolicy,
    DestinationError,
    DestinationKind,
    Labels,
    authentication_results,
    delivery_toml,
    label_block,
    parse_destination,
    prepared,
    read_delivery,
    retry_delay,
    strip_forged_labels,
    subject_tag,
)
from canary.errors import ConfigInvalid, InvalidDestination
from canary.relation import Relation
from data.home import Home, init_home

CANARY = "canary.example.org"
LABEL_NAMES = [
    "Authentication-Results",
    "X-Canary-Alias",
    "X-Canary-Company",
    "X-Canary-Relation",
    "X-Canary-Sender",
    "X-Canary-Verdict",
    "X-Canary-Id",
]
SHA = "0123456789abcdef" * 4


def labels(company: str = "MegaMart", sender: str = "deals.example", *,
           alias: str = "mega-mart@canary.example.org", relation: str = "third_party",
           verdict: str = "leaked", authentication: Authentication | None = None) -> Labels:
    return Labels(authserv_id=CANARY, alias=alias, company=company, relation=relation,
                  sender=sender, verdict=verdict, sha256=SHA, authentication=authentication)


def header_fields(head: bytes) -> list[tuple[str, str]]:
    """CRLF header lines as (name, unfolded value); continuation lines are joined."""
    text = head.decode("ascii")
    assert text.endswith("\r\n")
    fields: list[tuple[str, str]] = []
    for line in text[:-2].split("\r\n"):
        if line[:1] in (" ", "\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + line)
        else:
            name, colon, value = line.partition(":")
            assert colon, line
            fields.append((name, value.strip()))
    return fields


def decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


def assert_one_sentence(message: str) -> None:
    assert message.endswith("."), message
    assert "\n" not in message and "\r" not in message, message
    assert ". " not in message, message


# --- 1. parse_destination: accepted forms --------------------------------------


def test_maildir_absolute_path() -> None:
    d = parse_destination("maildir:/abs/path")
    assert d.kind is DestinationKind.MAILDIR
    assert d.path == "/abs/path"
    assert d.key == "maildir:/abs/path"
    assert d.host is None and d.port is None


@pytest.mark.parametrize("url", ["lmtp:host:24?recipient=alice",
                                 "lmtp://host:24?recipient=alice",
                                 "lmtp:host?recipient=alice"])
def test_lmtp_over_tcp_with_default_port(url: str) -> None:
    d = parse_destination(url)
    assert d.kind is DestinationKind.LMTP
    assert (d.host, d.port, d.path) == ("host", 24, None)
    assert d.recipient == "alice"
    assert d.key == "lmtp:host:24?recipient=alice"


def test_lmtp_on_a_unix_socket() -> None:
    d = parse_destination("lmtp:/run/dovecot/lmtp?recipient=alice")
    assert d.kind is DestinationKind.LMTP
    assert d.path == "/run/dovecot/lmtp"
    assert d.host is None and d.port is None
    assert d.recipient == "alice"
    assert d.key == "lmtp:/run/dovecot/lmtp?recipient=alice"


def test_imap_with_password_file_and_default_port() -> None:
    d = parse_destination("imap://alice@mail.example/Archive?password_file=/x")
    assert d.kind is DestinationKind.IMAP
    assert (d.host, d.port, d.tls, d.starttls) == ("mail.example", 143, False, False)
    assert d.user == "alice"
    assert d.folder == "Archive"
    assert d.password_file == "/x" and d.password_env is None
    assert d.key == "imap://alice@mail.example:143/Archive"
    assert "/x" not in d.key


def test_imaps_with_password_env_and_cafile() -> None:
    d = parse_destination("imaps://alice@mail.example:993/INBOX?password_env=PW&cafile=/c.pem")
    assert d.kind is DestinationKind.IMAP
    assert (d.host, d.port, d.tls) == ("mail.example", 993, True)
    assert d.folder == "INBOX"
    assert d.password_env == "PW" and d.password_file is None
    assert d.cafile == "/c.pem"
    assert d.key == "imaps://alice@mail.example:993/INBOX"
    assert "PW" not in d.key


@pytest.mark.parametrize(("url", "port"), [
    ("imaps://alice@mail.example?password_env=PW", 993),
    ("imaps://alice@mail.example/?password_env=PW", 993),
    ("imap://alice@mail.example?password_file=/x", 143),
])
def test_imap_folder_defaults_to_inbox(url: str, port: int) -> None:
    d = parse_destination(url)
    assert d.folder == "INBOX"
    assert d.port == port


def test_imap_folder_with_spaces_percent_encoded() -> None:
    d = parse_destination("imaps://alice@mail.example/Canary%20Mail/Sold%20On?password_env=PW")
    assert d.folder == "Canary Mail/Sold On"
    assert d.key == "imaps://alice@mail.example:993/Canary Mail/Sold On"


def test_smtp_with_port_recipient_and_starttls() -> None:
    d = parse_destination("smtp://mx.example:2525?recipient=me@example.org&starttls=yes")
    assert d.kind is DestinationKind.SMTP
    assert (d.host, d.port) == ("mx.example", 2525)
    assert d.starttls is True and d.tls is False
    assert d.recipient == "me@example.org"
    assert d.key == "smtp://mx.example:2525?recipient=me@example.org"


def test_smtp_default_port_and_no_starttls() -> None:
    d = parse_destination("smtp://mx.example?recipient=me@example.org")
    assert (d.port, d.starttls) == (25, False)
    assert d.key == "smtp://mx.example:25?recipient=me@example.org"


@pytest.mark.parametrize("url", [
    "imaps://alice@mail.example/INBOX?password_file=/etc/canary/secret-pw",
    "imaps://alice@mail.example/INBOX?password_env=HUNTER2_VARIABLE",
    "smtp://alice@mx.example?recipient=me@example.org&password_file=/etc/canary/secret-pw",
    "smtp://alice@mx.example?recipient=me@example.org&password_env=HUNTER2_VARIABLE",
])
def test_key_names_no_password_source(url: str) -> None:
    key = parse_destination(url).key
    assert "secret-pw" not in key and "HUNTER2" not in key
    assert "password" not in key


# --- 1. parse_destination: refused forms ----------------------------------------


@pytest.mark.parametrize(("url", "hint"), [
    ("maildir:relative/path", "absolute"),
    ("maildir:~/Maildir", "absolute"),
    ("lmtp:host:24", "recipient="),
    ("lmtp:/run/dovecot/lmtp", "recipient="),
    ("lmtp:host:24?recipient=", "recipient="),
    ("imap://alice@mail.example/INBOX", "password_file="),
    ("imaps://alice@mail.example/INBOX", "password_env="),
    ("ftp://files.example/inbox", "maildir:"),
    ("mbox:/var/mail/alice", "smtp://"),
    ("lmtp:host:99999?recipient=alice", "port"),
    ("lmtp:host:abc?recipient=alice", "port"),
    ("lmtp:host:0?recipient=alice", "port"),
    ("imaps://alice@mail.example:70000/INBOX?password_env=PW", "port"),
    ("smtp://mx.example:abc?recipient=me@example.org", "port"),
    ("smtp://mx.example?recipient=me@example.org&tls=on", "tls"),
    ("imaps://alice@mail.example/INBOX?password_env=PW&folder=Sent", "folder"),
    ("lmtp:host:24?recipient=alice&user=bob", "user"),
    ("smtp://mx.example", "recipient="),
    ("nothing", "maildir:"),
    ("", "maildir:"),
])
def test_refused_with_a_helpful_message(url: str, hint: str) -> None:
    with pytest.raises(DestinationError) as caught:
        parse_destination(url)
    assert hint in str(caught.value)
    assert_one_sentence(str(InvalidDestination(str(caught.value))))


@pytest.mark.parametrize("url", [
    "imaps://alice:secret@mail.example/INBOX",
    "imap://alice:secret@mail.example/INBOX?password_file=/x",
    "smtp://alice:secret@mx.example?recipient=me@example.org",
    "ftp://alice:secret@files.example/",
])
def test_password_in_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(DestinationError) as caught:
        parse_destination(url)
    assert "secret" not in str(caught.value)
    assert "password_file" in str(caught.value)


@pytest.mark.parametrize("url", [
    "imaps://alice:secret@mail.example:99999/INBOX",
    "smtp://alice:secret@mx.example:abc?recipient=me@example.org",
])
def test_password_in_url_with_a_bad_port_is_not_repeated(url: str) -> None:
    with pytest.raises(DestinationError) as caught:
        parse_destination(url)
    assert "secret" not in str(caught.value)


def test_password_as_unknown_option_is_not_repeated() -> None:
    with pytest.raises(DestinationError) as caught:
        parse_destination("imaps://alice@mail.example/INBOX?password=secret")
    assert "secret" not in str(caught.value)


def test_lmtp_with_password_in_url_is_refused() -> None:
    with pytest.raises(DestinationError) as caught:
        parse_destination("lmtp://alice:secret@mail.example:24?recipient=alice")
    assert "secret" not in str(caught.value)


def test_lmtp_ipv6_host_and_port() -> None:
    d = parse_destination("lmtp:[::1]:24?recipient=alice")
    assert d.port == 24
    assert d.host in ("::1", "[::1]")
    assert d.key == "lmtp:[::1]:24?recipient=alice"


def test_superscript_digit_port_is_a_destination_error() -> None:
    with pytest.raises(DestinationError) as caught:
        parse_destination("lmtp:mail.example:²?recipient=alice")
    assert type(caught.value) is DestinationError
    assert "port" in str(caught.value)


@pytest.mark.parametrize("url", [
    "imaps://alice@mail.example:0/INBOX?password_env=PW",
    "smtp://mx.example:0?recipient=me@example.org",
])
def test_port_zero_is_refused(url: str) -> None:
    with pytest.raises(DestinationError, match="port"):
        parse_destination(url)


def test_maildir_unknown_option_message_is_helpful() -> None:
    with pytest.raises(DestinationError) as caught:
        parse_destination("maildir:/home/alice/Maildir?create=yes")
    message = str(caught.value)
    assert "create" in message
    assert not message.rstrip().endswith(":"), message


# --- 2. DeliveryPolicy.action ----------------------------------------------------


@pytest.mark.parametrize(("relation", "action"), [
    (Relation.FIRST_PARTY, Action.DELIVER),
    (Relation.PROCESSOR, Action.DELIVER),
    (Relation.UNPROVEN, Action.DELIVER),
    (Relation.THIRD_PARTY, Action.TAG),
    (Relation.UNVERIFIED, Action.TAG),
    (Relation.SPOOFED, Action.TAG),
    (Relation.IMPERSONATION, Action.TAG),
    (Relation.BACKSCATTER, Action.TAG),
])
def test_default_action_per_relation(relation: Relation, action: Action) -> None:
    assert DeliveryPolicy().action(relation, "mega-mart", retired=False) is action
    assert DEFAULT_ACTIONS[relation] is action


def test_every_relation_has_a_default() -> None:
    assert set(DEFAULT_ACTIONS) == set(Relation)


def test_company_override_by_slug() -> None:
    policy = DeliveryPolicy(companies={"mega-mart": {Relation.THIRD_PARTY: Action.HOLD,
                                                     Relation.FIRST_PARTY: Action.TAG}})
    assert policy.action(Relation.THIRD_PARTY, "mega-mart", retired=False) is Action.HOLD
    assert policy.action(Relation.FIRST_PARTY, "mega-mart", retired=False) is Action.TAG
    # Relations the company does not override fall back to the policy's own.
    assert policy.action(Relation.SPOOFED, "mega-mart", retired=False) is Action.TAG
    # Other companies are not affected.
    assert policy.action(Relation.THIRD_PARTY, "acme", retired=False) is Action.TAG
    assert policy.action(Relation.FIRST_PARTY, "acme", retired=False) is Action.DELIVER


def test_partial_policy_falls_back_to_defaults() -> None:
    policy = DeliveryPolicy(actions={Relation.SPOOFED: Action.HOLD})
    assert policy.action(Relation.SPOOFED, "acme", retired=False) is Action.HOLD
    assert policy.action(Relation.THIRD_PARTY, "acme", retired=False) is Action.TAG
    assert policy.action(Relation.FIRST_PARTY, "acme", retired=False) is Action.DELIVER


@pytest.mark.parametrize("relation", [*Relation, None])
def test_retired_alias_is_held_by_default(relation: Relation | None) -> None:
    assert DeliveryPolicy().action(relation, "mega-mart", retired=True) is Action.HOLD


def test_retired_wins_over_company_override_and_can_be_changed() -> None:
    policy = DeliveryPolicy(companies={"mega-mart": {Relation.FIRST_PARTY: Action.DELIVER}})
    assert policy.action(Relation.FIRST_PARTY, "mega-mart", retired=True) is Action.HOLD
    tagging = DeliveryPolicy(retired=Action.TAG)
    assert tagging.action(Relation.FIRST_PARTY, "mega-mart", retired=True) is Action.TAG


def test_not_analysed_yet_is_delivered_by_default() -> None:
    assert DeliveryPolicy().action(None, "mega-mart", retired=False) is Action.DELIVER
    assert DeliveryPolicy(pending=Action.HOLD).action(None, "x", retired=False) is Action.HOLD


# --- 3. label_block and prepared -------------------------------------------------


def test_label_block_names_and_order() -> None:
    block = label_block(labels())
    assert block.endswith(b"\r\n") and not block.endswith(b"\r\n\r\n")
    fields = header_fields(block)
    assert [name for name, _ in fields] == LABEL_NAMES
    assert dict(fields) == {
        "Authentication-Results": f"{CANARY}; none (not analysed yet)",
        "X-Canary-Alias": "mega-mart@canary.example.org",
        "X-Canary-Company": "MegaMart",
        "X-Canary-Relation": "third_party",
        "X-Canary-Sender": "deals.example",
        "X-Canary-Verdict": "leaked",
        "X-Canary-Id": SHA,
    }


def test_label_block_names_and_order_with_authentication() -> None:
    block = label_block(labels(authentication=full_authentication()))
    assert [name for name, _ in header_fields(block)] == LABEL_NAMES


@pytest.mark.parametrize("hostile", [
    "MegaMart\r\nBcc: victim@example.org",
    "MegaMart\nX-Canary-Relation: first_party",
    "MegaMart\rX-Canary-Verdict: clean",
    "Mega\x00Mart\x1b[31m\x7f",
    "Mega\u2028Mart\u0085\u2029X-Evil: 1",
    "Mega\tMart\x0b\x0c",
])
def test_values_cannot_inject_a_header(hostile: str) -> None:
    block = label_block(labels(company=hostile, sender=hostile, alias=hostile, verdict=hostile,
                               relation=hostile))
    # The only line breaks are CRLF ends of lines (and folds of encoded words).
    assert b"\r" not in block.replace(b"\r\n", b"")
    assert b"\n" not in block.replace(b"\r\n", b"")
    fields = header_fields(block)
    assert [name for name, _ in fields] == LABEL_NAMES
    for name, value in fields[1:]:
        text = decoded(value) if name in ("X-Canary-Company", "X-Canary-Sender") else value
        assert all(c.isprintable() for c in text), (name, text)
        assert "\n" not in text and "\r" not in text


def test_long_value_stays_one_field() -> None:
    block = label_block(labels(company="Mega" * 500, sender="s" * 2000))
    assert all(len(line) <= 998 for line in block.split(b"\r\n"))
    assert [name for name, _ in header_fields(block)] == LABEL_NAMES


@pytest.mark.parametrize("company", [
    "Café Nonna",
    "Müller & Söhne GmbH",
    "株式会社メガマート",
    "Ελληνικά Δώρα " * 10,
    "emoji 🛒 mart",
])
def test_non_ascii_company_is_encoded_and_decodes_back(company: str) -> None:
    block = label_block(labels(company=company, sender="bücher.example"))
    block.decode("ascii")  # raises if any 8-bit byte got through
    fields = dict(header_fields(block))
    assert "=?utf-8?" in fields["X-Canary-Company"].lower()
    assert decoded(fields["X-Canary-Company"]) == " ".join(company.split())
    assert decoded(fields["X-Canary-Sender"]) == "bücher.example"


RAW = (
    b"Received: from mx.shop.example (mx.shop.example [192.0.2.1])\r\n"
    b"\tby canary.example.org; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=s1;\r\n"
    b"   h=from:to:subject; bh=AAAA; b=BBBB\r\n"
    b"From:  \"Mega\xe9 Mart\"   <news@shop.example>  \r\n"
    b"To: mega-mart@canary.example.org\r\n"
    b"Subject:\tHello   world \t\r\n"
    b"X-Mailer:\r\n"
    b"\r\n"
    b"X-Canary-Relation: first_party\r\n"
    b"Authentication-Results: canary.example.org; dkim=pass\r\n"
    b"Caf\xc3\xa9 \xff\xfe body  \t\r\n"
    b"\r\n\r\n"
)


@pytest.mark.parametrize("raw", [
    RAW,
    RAW.rstrip(b"\r\n"),
    RAW.replace(b"\r\n", b"\n"),
    b"From: a@shop.example\r\n\r\n",
    b"From: a@shop.example\r\n",
    b"X-Canaries: no\r\nX-CanaryRelation: no\r\n\r\nX-Canary-Id: body\r\n",
])
def test_deliver_keeps_the_received_bytes(raw: bytes) -> None:
    block = label_block(labels())
    out = prepared(raw, labels(), Action.DELIVER)
    assert out[:len(block)] == block
    assert out[len(block):] == raw


def test_hold_is_prepared_like_deliver() -> None:
    assert prepared(RAW, labels(), Action.HOLD) == label_block(labels()) + RAW


def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def subjects(head_lines: list[bytes]) -> list[str]:
    """The Subject fields of a header section, unfolded, as text."""
    found: list[str] = []
    inside = False
    for line in head_lines:
        if line[:1] in (b" ", b"\t") and inside:
            found[-1] += line.decode("ascii")
            continue
        inside = line.lower().startswith(b"subject:")
        if inside:
            found.append(line[len(b"subject:"):].decode("ascii").strip())
    return found


def test_tag_changes_only_the_subject() -> None:
    block = label_block(labels())
    out = prepared(RAW, labels(), Action.TAG)
    assert out.startswith(block)
    head, body = split_message(out[len(block):])
    original_head, original_body = split_message(RAW)
    assert body == original_body
    assert len(head) == len(original_head)
    changed = [(a, b) for a, b in zip(head, original_head, strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][0].startswith(b"Subject: ")
    (subject,) = subjects(head)
    assert decoded(subject).startswith("[Canary: MegaMart \u2192 deals.example]")
    assert decoded(subject).endswith("Hello   world")


def test_tag_adds_a_subject_when_there_is_none() -> None:
    raw = b"From: news@shop.example\r\nTo: x@canary.example.org\r\n\r\nBody\r\n"
    out = prepared(raw, labels(), Action.TAG)
    block = label_block(labels())
    rest = out[len(block):]
    head, body = split_message(rest)
    assert body == b"Body\r\n"
    (subject,) = subjects(head)
    assert decoded(subject) == "[Canary: MegaMart \u2192 deals.example]"
    assert rest.endswith(raw)


def test_tag_keeps_a_folded_subject() -> None:
    raw = (b"From: news@shop.example\r\n"
           b"Subject: Our biggest\r\n  sale\r\n\tof the year\r\n"
           b"To: x@canary.example.org\r\n\r\nBody\r\n")
    out = prepared(raw, labels(), Action.TAG)
    rest = out[len(label_block(labels())):]
    assert b"\r\n  sale\r\n\tof the year\r\nTo: x@canary.example.org\r\n" in rest
    (subject,) = subjects(split_message(rest)[0])
    text = decoded(subject)
    assert text.startswith("[Canary: MegaMart \u2192 deals.example] Our biggest")
    assert text.endswith("of the year")


def test_tag_with_non_ascii_company_and_hostile_sender() -> None:
    out = prepared(b"Subject: Hi\r\n\r\nB", labels("Café Nonna", "x@y\r\nBcc: z"), Action.TAG)
    head, body = split_message(out)
    assert body == b"B"
    (subject,) = subjects(head)
    assert decoded(subject).startswith("[Canary: Café Nonna \u2192 x@y Bcc: z]")
    assert subject_tag("Café\nNonna", "a\rb") == "[Canary: Café Nonna \u2192 a b]"


def test_tag_removes_forged_labels_too() -> None:
    raw = b"X-Canary-Relation: first_party\r\nSubject: Hi\r\nFrom: a@b\r\n\r\nB"
    out = prepared(raw, labels(), Action.TAG)
    head, _ = split_message(out)
    names = [line.split(b":")[0] for line in head if line[:1] not in (b" ", b"\t")]
    assert names.count(b"X-Canary-Relation") == 1


def test_tag_before_an_encoded_subject_keeps_a_space() -> None:
    raw = b"Subject: =?utf-8?q?Hall=C3=B6?=\r\nFrom: a@b\r\n\r\nB"
    out = prepared(raw, labels("Café", "shop.example"), Action.TAG)
    (subject,) = subjects(split_message(out)[0])
    assert decoded(subject) == "[Canary: Café \u2192 shop.example] Hallö"


def test_tag_lf_only_message_without_subject_leaves_the_body() -> None:
    raw = b"From: a@b\nTo: c@d\n\nSubject: quoted in the body\n"
    out = prepared(raw, labels(), Action.TAG)
    assert out.endswith(b"\n\nSubject: quoted in the body\n")


# --- 4. strip_forged_labels -----------------------------------------------------


def test_strips_canary_labels_in_any_case_with_continuations() -> None:
    raw = (b"Received: from x\r\n\tby y\r\n"
           b"X-Canary-Relation: first_party\r\n"
           b"x-canary-verdict: clean\r\n  folded on\r\n\tand on\r\n"
           b"X-CANARY-ID :  forged\r\n"
           b"AUTHENTICATION-RESULTS: Canary.Example.ORG;\r\n\tspf=pass smtp.mailfrom=x\r\n"
           b"Authentication-Results: mx.upstream.example; spf=pass\r\n"
           b"Authentication-Results: canary.example.org.evil; spf=pass\r\n"
           b"Subject: kept\r\n"
           b"\r\n"
           b"X-Canary-Relation: x\r\n"
           b"Authentication-Results: canary.example.org; dkim=pass\r\n")
    assert strip_forged_labels(raw, CANARY) == (
        b"Received: from x\r\n\tby y\r\n"
        b"Authentication-Results: mx.upstream.example; spf=pass\r\n"
        b"Authentication-Results: canary.example.org.evil; spf=pass\r\n"
        b"Subject: kept\r\n"
        b"\r\n"
        b"X-Canary-Relation: x\r\n"
        b"Authentication-Results: canary.example.org; dkim=pass\r\n")


def test_strip_is_case_insensitive_on_the_configured_authserv_id() -> None:
    raw = b"Authentication-Results: canary.example.org; spf=pass\r\nSubject: s\r\n\r\nB"
    assert strip_forged_labels(raw, "CANARY.Example.org") == b"Subject: s\r\n\r\nB"


def test_strip_lf_only_message() -> None:
    raw = (b"x-canary-relation: first_party\n"
           b"Authentication-Results: canary.example.org;\n spf=pass\n"
           b"From: a@b\n\nX-Canary-Relation: x\n")
    assert strip_forged_labels(raw, CANARY) == b"From: a@b\n\nX-Canary-Relation: x\n"


def test_strip_message_without_body() -> None:
    raw = b"From: a@b\r\nX-Canary-Relation: first_party\r\n  more\r\n"
    assert strip_forged_labels(raw, CANARY) == b"From: a@b\r\n"


@pytest.mark.parametrize("raw", [
    RAW,
    RAW.replace(b"\r\n", b"\n"),
    b"",
    b"From: a@b",
    b"\r\n\r\nX-Canary-Relation: body only\r\n",
    b"Authentication-Results: mx.upstream.example; spf=pass\r\nFrom: a@b\r\n\r\n",
    b"X-Canary: no dash after the prefix\r\nX-Canaries: no\r\n\r\n",
])
def test_nothing_to_strip_returns_the_same_bytes(raw: bytes) -> None:
    assert strip_forged_labels(raw, CANARY) is raw


@pytest.mark.parametrize(("raw", "expected"), [
    (b"From: a@b\r\nX-Canary-Relation: first_party\r\n\r\nBody\r\n",
     b"From: a@b\r\n\r\nBody\r\n"),
    (b"From: a@b\nx-canary-id: forged\n  folded\n\nBody\n", b"From: a@b\n\nBody\n"),
])
def test_stripping_the_last_header_keeps_the_body(raw: bytes, expected: bytes) -> None:
    assert strip_forged_labels(raw, CANARY) == expected


@pytest.mark.parametrize("forged", [
    b"Authentication-Results: canary.example.org 1; spf=pass\r\n",
    b"Authentication-Results: (trust me) canary.example.org; spf=pass\r\n",
])
def test_forged_authentication_results_with_version_or_comment(forged: bytes) -> None:
    raw = b"Subject: s\r\n" + forged + b"From: a@b\r\n\r\nBody\r\n"
    assert strip_forged_labels(raw, CANARY) == b"Subject: s\r\nFrom: a@b\r\n\r\nBody\r\n"


def test_prepared_replaces_forged_labels_with_canarys() -> None:
    raw = (b"X-Canary-Relation: first_party\r\nX-Canary-Verdict: clean\r\n"
           b"Authentication-Results: canary.example.org; dkim=pass header.d=megamart.example\r\n"
           b"From: a@b\r\nSubject: s\r\n\r\nBody\r\n")
    out = prepared(raw, labels(), Action.DELIVER)
    assert out == label_block(labels()) + b"From: a@b\r\nSubject: s\r\n\r\nBody\r\n"


# --- 5. authentication_results ---------------------------------------------------


def full_authentication() -> Authentication:
    return Authentication(
        spf=SpfResult(Result.PASS, "bounces.shop.example"),
        dkim=(DkimResult(Result.PASS, "shop.example", "s1"),
              DkimResult(Result.FAIL, "esp.example", "k1")),
        dmarc=DmarcResult(Result.PASS, None, "shop.example", "shop.example", None),
        arc=ArcResult(Result.PASS),
    )


def parsed(header: str) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    result = authres.AuthenticationResultsHeader.parse(header)
    assert result.authserv_id == CANARY
    return [(r.method, r.result, [(p.type, p.name, p.value) for p in r.properties])
            for r in result.results]


def test_authentication_results_renders_every_method() -> None:
    header = authentication_results(labels(authentication=full_authentication()))
    assert header.startswith(f"Authentication-Results: {CANARY};")
    assert parsed(header) == [
        ("spf", "pass", [("smtp", "mailfrom", "bounces.shop.example")]),
        ("dkim", "pass", [("header", "d", "shop.example")]),
        ("dkim", "fail", [("header", "d", "esp.example")]),
        ("dmarc", "pass", []),
        ("arc", "pass", []),
    ]


def test_authentication_results_with_nothing_proven() -> None:
    auth = Authentication(SpfResult(Result.NONE, None), (),
                          DmarcResult(Result.TEMPERROR, None, None, None, None))
    header = authentication_results(labels(authentication=auth))
    assert parsed(header) == [("spf", "none", []), ("dkim", "none", []),
                              ("dmarc", "temperror", [])]


@pytest.mark.parametrize("result", [Result.FAIL, Result.SOFTFAIL, Result.NEUTRAL,
                                    Result.TEMPERROR, Result.PERMERROR])
def test_authentication_results_spf_words(result: Result) -> None:
    auth = Authentication(SpfResult(result, "x.example"), (DkimResult(result, "x.example"),),
                          DmarcResult(Result.FAIL, None, None, None, None))
    methods = parsed(authentication_results(labels(authentication=auth)))
    assert methods[0] == ("spf", result.value, [("smtp", "mailfrom", "x.example")])
    assert methods[1] == ("dkim", result.value, [("header", "d", "x.example")])
    assert methods[2] == ("dmarc", "fail", [])


def test_authentication_results_not_analysed_yet() -> None:
    header = authentication_results(labels())
    assert header == f"Authentication-Results: {CANARY}; none (not analysed yet)"
    assert parsed(header) == []


def test_authentication_results_folds_with_crlf_tab() -> None:
    header = authentication_results(labels(authentication=full_authentication()))
    assert "\n" not in header.replace("\r\n\t", "")
    assert "\r" not in header.replace("\r\n\t", "")


def test_hostile_dkim_domain_cannot_break_the_label_block() -> None:
    auth = Authentication(
        SpfResult(Result.NONE, None),
        (DkimResult(Result.FAIL, "evil.example\rX-Canary-Relation: first_party"),),
        DmarcResult(Result.FAIL, None, None, None, None))
    block = label_block(labels(authentication=auth))
    assert b"\r" not in block.replace(b"\r\n", b"")


# --- 6. retry_delay ---------------------------------------------------------------


def test_retry_starts_at_first_and_doubles_up_to_an_hour() -> None:
    delays = [retry_delay(n) for n in range(12)]
    assert delays[0] == FIRST_RETRY == timedelta(seconds=30)
    assert delays[:7] == [timedelta(seconds=30 * 2**n) for n in range(7)]
    assert delays[7:] == [LONGEST_RETRY] * 5
    assert LONGEST_RETRY == timedelta(hours=1)
    assert retry_delay(10**9) == LONGEST_RETRY


def test_retry_with_another_first() -> None:
    assert [retry_delay(n, timedelta(minutes=5)) for n in range(5)] == [
        timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20),
        timedelta(minutes=40), timedelta(hours=1)]


def test_retry_first_longer_than_an_hour_is_the_cap() -> None:
    first = timedelta(hours=3)
    assert [retry_delay(n, first) for n in (0, 1, 5, 100)] == [first] * 4


@pytest.mark.parametrize("first", [timedelta(0), timedelta(microseconds=1),
                                   timedelta(seconds=1), FIRST_RETRY, timedelta(days=2)])
def test_retry_is_never_negative_nor_shrinking(first: timedelta) -> None:
    delays = [retry_delay(n, first) for n in range(200)]
    assert all(d >= timedelta(0) for d in delays)
    assert delays == sorted(delays)
    assert max(delays) <= max(LONGEST_RETRY, first)


def test_retry_with_a_short_first_still_reaches_the_hour() -> None:
    assert retry_delay(100, timedelta(milliseconds=10)) == LONGEST_RETRY


# --- 6. read_delivery ---------------------------------------------------------------


@pytest.mark.parametrize(("table", "hint"), [
    ("maildir:/x", "table"),
    ({"destinations": "maildir:/x"}, "list"),
    ({"destinations": ["maildir:/x", 3]}, "list"),
    ({"destinations": ["maildir:/x", "maildir:/x"]}, "twice"),
    ({"destinations": ["imaps://a@h/INBOX?password_env=A",
                       "imaps://a@h:993/INBOX?password_file=/b"]}, "twice"),
    ({"destinations": ["maildir:relative"]}, "absolute"),
    ({"policy": "tag"}, "table"),
    ({"policy": {"leaked": "tag"}}, "not a relation"),
    ({"policy": {"spoofed": "drop"}}, "deliver, tag or hold"),
    ({"policy": {"spoofed": "TAG"}}, "deliver, tag or hold"),
    ({"policy": {"spoofed": True}}, "deliver, tag or hold"),
    ({"policy": {"retired": "bounce"}}, "deliver, tag or hold"),
    ({"policy": {"pending": "later"}}, "deliver, tag or hold"),
    ({"policy": {"companies": "mega-mart"}}, "table"),
    ({"policy": {"companies": {"mega-mart": "tag"}}}, "table"),
    ({"policy": {"companies": {"mega-mart": {"friends": "tag"}}}}, "not a relation"),
    ({"policy": {"companies": {"mega-mart": {"spoofed": "burn"}}}}, "deliver, tag or hold"),
    ({"analysis_wait_minutes": -1}, "analysis_wait_minutes must be at least 0"),
    ({"retry_days": 0}, "retry_days must be more than 0"),
    ({"retry_days": -2.5}, "retry_days must be more than 0"),
    ({"first_retry_seconds": 0}, "first_retry_seconds must be more than 0"),
    ({"first_retry_seconds": -30}, "first_retry_seconds must be more than 0"),
    ({"first_retry_seconds": True}, "first_retry_seconds must be a number"),
    ({"retry_days": False}, "retry_days must be a number"),
    ({"analysis_wait_minutes": True}, "analysis_wait_minutes must be a number"),
    ({"retry_days": "5"}, "retry_days must be a number"),
    ({"authserv_id": 'mx"1'}, "authserv_id must be a host name"),
])
def test_read_delivery_rejects(table: object, hint: str) -> None:
    with pytest.raises(DestinationError, match=hint):
        read_delivery(table)


@pytest.mark.parametrize("table", [
    {"retry_days": math.inf},
    {"retry_days": math.nan},
    {"analysis_wait_minutes": math.nan},
    {"first_retry_seconds": 1e300},
])
def test_read_delivery_rejects_non_finite_numbers(table: dict[str, float]) -> None:
    with pytest.raises(DestinationError):
        read_delivery(table)


def test_read_delivery_defaults() -> None:
    assert read_delivery(None) == DeliveryConfig()
    assert read_delivery({}) == DeliveryConfig()
    config = read_delivery({"analysis_wait_minutes": 0, "retry_days": 1,
                            "first_retry_seconds": 2.5})
    assert config.analysis_wait == timedelta(0)
    assert config.retry_for == timedelta(days=1)
    assert config.first_retry == timedelta(seconds=2.5)


# --- 6. canary.toml round trip --------------------------------------------------------


URLS = ["maildir:/home/alice/Maildir",
        "imaps://alice@mail.example/Canary%20Mail?password_file=/home/alice/.imap-pw"]


def test_round_trip_through_canary_toml(tmp_path: Path) -> None:
    actions = {**DEFAULT_ACTIONS, Relation.SPOOFED: Action.HOLD,
               Relation.FIRST_PARTY: Action.TAG}
    companies = {"mega-mart": {Relation.THIRD_PARTY: Action.DELIVER,
                               Relation.IMPERSONATION: Action.HOLD}}
    policy = DeliveryPolicy(actions=actions, companies=companies)
    home = init_home(tmp_path / "h", [CANARY], deliver=URLS, delivery_policy=policy)
    assert stat.S_IMODE(home.config_path.stat().st_mode) == 0o600
    delivery = Home(tmp_path / "h").config().delivery
    assert delivery.urls == tuple(URLS)
    assert dict(delivery.policy.actions) == actions
    assert {slug: dict(a) for slug, a in delivery.policy.companies.items()} == companies
    assert delivery.policy == policy
    assert [d.key for d in delivery.destinations] == [
        "maildir:/home/alice/Maildir", "imaps://alice@mail.example:993/Canary Mail"]


def test_round_trip_of_a_partial_policy(tmp_path: Path) -> None:
    policy = DeliveryPolicy(actions={Relation.SPOOFED: Action.HOLD},
                            companies={"mega-mart": {Relation.THIRD_PARTY: Action.DELIVER}},
                            retired=Action.TAG, pending=Action.HOLD)
    init_home(tmp_path / "h", [CANARY], deliver=URLS, delivery_policy=policy)
    read = Home(tmp_path / "h").config().delivery.policy
    for relation in Relation:
        assert read.actions[relation] is policy.actions.get(relation, DEFAULT_ACTIONS[relation])
    assert read.companies == {"mega-mart": {Relation.THIRD_PARTY: Action.DELIVER}}
    assert (read.retired, read.pending) == (Action.TAG, Action.HOLD)


@pytest.mark.parametrize("slug", ['say "cheese"', "café-nonna", "back\\slash", "o'brien",
                                  "dots.and]brackets["])
def test_company_slug_survives_the_round_trip(tmp_path: Path, slug: str) -> None:
    companies = {slug: {Relation.THIRD_PARTY: Action.HOLD}}
    init_home(tmp_path / "h", [CANARY], deliver=URLS[:1],
              delivery_policy=DeliveryPolicy(companies=companies))
    read = Home(tmp_path / "h").config().delivery.policy
    assert read.companies == companies
    assert read.action(Relation.THIRD_PARTY, slug, retired=False) is Action.HOLD


def test_non_bmp_destination_survives_the_round_trip(tmp_path: Path) -> None:
    url = "maildir:/home/alice/\U0001f4ec"
    init_home(tmp_path / "h", [CANARY], deliver=[url])
    assert Home(tmp_path / "h").config().delivery.urls == (url,)


def test_authserv_id_is_written_as_valid_toml() -> None:
    config = DeliveryConfig(authserv_id="mx-1.canary.example.org")
    document = tomllib.loads("\n".join(delivery_toml(config)))
    assert read_delivery(document["delivery"]).authserv_id == "mx-1.canary.example.org"


def test_numbers_are_written_back_exactly() -> None:
    config = read_delivery({"first_retry_seconds": 12345.67, "retry_days": 1.2345678,
                            "analysis_wait_minutes": 10})
    again = read_delivery(tomllib.loads("\n".join(delivery_toml(config)))["delivery"])
    assert again == config


def test_broken_delivery_section_is_config_invalid(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h", [CANARY])
    text = home.config_path.read_text()
    home.config_path.write_text(text + '\n[delivery]\ndestinations = "maildir:/x"\n')
    with pytest.raises(ConfigInvalid, match="destinations"):
        Home(tmp_path / "h").config()


def test_unknown_relation_in_toml_is_config_invalid(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h", [CANARY], deliver=URLS[:1])
    text = home.config_path.read_text().replace('spoofed = "tag"', 'spoofd = "tag"')
    home.config_path.write_text(text)
    with pytest.raises(ConfigInvalid, match="spoofd"):
        Home(tmp_path / "h").config()


def test_infinite_retry_days_in_toml_is_config_invalid(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h", [CANARY], deliver=URLS[:1])
    text = home.config_path.read_text()
    assert "retry_days = 5\n" in text
    home.config_path.write_text(text.replace("retry_days = 5\n", "retry_days = inf\n"))
    with pytest.raises(ConfigInvalid):
        Home(tmp_path / "h").config()


@pytest.mark.parametrize("url", [
    "maildir:relative",
    "lmtp:host:24",
    "imaps://alice@mail.example/INBOX",
    "imaps://alice:secret@mail.example/INBOX",
    "ftp://files.example/",
    "smtp://mx.example:99999?recipient=me@example.org",
    "smtp://mx.example?recipient=me@example.org&colour=blue",
])
def test_init_with_a_bad_destination(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidDestination) as caught:
        init_home(tmp_path / "h", [CANARY], deliver=[url])
    assert_one_sentence(str(caught.value))
    assert "secret" not in str(caught.value)
    assert not (tmp_path / "h" / "canary.toml").exists()

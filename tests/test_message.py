"""Reading sender facts from raw messages as they arrive, hostile ones included."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import make_message

from canary.message import HEADER_TEXT_MAX, HEADERS_KEPT, MessageFacts, read_message

DATA = Path(__file__).parent / "data"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --- a realistic newsletter sent through an ESP -----------------------------------


@pytest.fixture(scope="module")
def newsletter() -> MessageFacts:
    return read_message(sample("newsletter-via-esp.eml"))


def test_from_address_domain_and_organisation(newsletter: MessageFacts) -> None:
    assert newsletter.from_addresses == ("deals@news.acme.co.uk",)
    assert newsletter.from_address == "deals@news.acme.co.uk"
    assert newsletter.from_domain == "news.acme.co.uk"
    # The organisation is the registrable domain under the PSL, not the last two labels.
    assert newsletter.from_org == "acme.co.uk"
    assert newsletter.from_orgs == ("acme.co.uk",)


def test_return_path_is_kept_as_written(newsletter: MessageFacts) -> None:
    assert newsletter.return_path == (
        "<bounce-mc.us5_1234.5678-someone=canary.example.org@mail123.suw11.mcsv.example>"
    )


def test_every_dkim_signing_domain_in_order_and_normalised(newsletter: MessageFacts) -> None:
    # Two folded signatures: the ESP's own and the customer's (written in mixed case).
    assert newsletter.dkim_domains == ("mcsv.example", "news.acme.co.uk")


def test_list_unsubscribe_is_unfolded(newsletter: MessageFacts) -> None:
    assert newsletter.list_unsubscribe == (
        "<https://acme.us5.list-manage.example/unsubscribe?u=a1b2c3&id=d4e5>, "
        "<mailto:unsubscribe-a1b2c3@mcsv.example>"
    )


def test_message_id(newsletter: MessageFacts) -> None:
    assert newsletter.message_id == "<20260203101500.abc123@news.acme.co.uk>"


def test_date_is_converted_to_utc(newsletter: MessageFacts) -> None:
    # Written as 11:15 at +0100.
    assert newsletter.date == datetime(2026, 2, 3, 10, 15, tzinfo=UTC)
    assert newsletter.date is not None and newsletter.date.utcoffset() == timedelta(0)


def test_subject_encoded_words_are_decoded(newsletter: MessageFacts) -> None:
    assert newsletter.subject == "Café week: 20% off crème brûlée"


def test_a_well_formed_message_has_no_problems(newsletter: MessageFacts) -> None:
    assert newsletter.problems == ()


def test_the_factory_message_reads_back_what_it_was_given() -> None:
    facts = read_message(make_message(sender='"Shop" <Orders@Shop.Example>', subject="Shipped"))
    assert facts.from_address == "orders@shop.example"
    assert facts.from_org == "shop.example"
    assert facts.subject == "Shipped"
    assert facts.message_id is not None and facts.message_id.endswith("@acme.example>")
    # The factory dates its messages now.
    assert facts.date is not None
    assert abs(datetime.now(UTC) - facts.date) < timedelta(minutes=5)
    assert facts.problems == ()


# --- more header shapes -----------------------------------------------------------


def test_several_dkim_signatures_of_one_domain_are_listed_once() -> None:
    raw = (b"From: a@esp.example\r\n"
           b"DKIM-Signature: v=1; d=esp.example; s=one; b=x\r\n"
           b"DKIM-Signature: v=1; s=two; d=ESP.example.; b=y\r\n"
           b"DKIM-Signature: d=customer.example; s=k; b=z\r\n"
           b"DKIM-Signature: v=1; s=nodomain; b=w\r\n\r\nbody")
    assert read_message(raw).dkim_domains == ("esp.example", "customer.example")


def test_a_dkim_tag_that_only_ends_in_d_is_not_the_domain() -> None:
    raw = b"From: a@b.example\r\nDKIM-Signature: v=1; sdid=evil.example; s=k; b=x\r\n\r\n"
    assert read_message(raw).dkim_domains == ()


def test_a_date_without_zone_information_is_taken_as_utc() -> None:
    raw = b"From: a@b.example\r\nDate: Tue, 03 Feb 2026 10:00:00 -0000\r\n\r\n"
    assert read_message(raw).date == datetime(2026, 2, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "subject"),
    [
        (b"=?iso-8859-1?q?Caf=E9?=", "Café"),
        (b"=?UTF-8?B?w4lsw6h2ZQ==?=", "Élève"),
        (b"Re: =?utf-8?q?Caf=C3=A9?=", "Re: Café"),
        # Adjacent encoded words join without the whitespace between them (RFC 2047).
        (b"=?utf-8?q?Ca?= =?utf-8?q?f=C3=A9?=", "Café"),
        # An unknown charset is kept as written rather than failing the message.
        (b"=?x-unknown?q?abc?=", "=?x-unknown?q?abc?="),
    ],
)
def test_encoded_word_subjects(header: bytes, subject: str) -> None:
    raw = b"From: a@b.example\r\nSubject: " + header + b"\r\n\r\n"
    assert read_message(raw).subject == subject


def test_encoded_display_name_does_not_hide_the_address() -> None:
    raw = b'From: "=?utf-8?q?Acme_=C3=9Cber?=" <News@ACME.example>\r\n\r\n'
    facts = read_message(raw)
    assert facts.from_addresses == ("news@acme.example",)
    assert facts.from_org == "acme.example"


def test_a_raw_utf8_subject_is_read_as_utf8() -> None:
    # RFC 6532: with SMTPUTF8 (which the listener offers) headers carry UTF-8 as is.
    raw = "From: a@b.example\r\nSubject: Café crème\r\n\r\n".encode()
    assert read_message(raw).subject == "Café crème"


def test_an_internationalised_from_domain_gives_its_organisation() -> None:
    # A company whose domain is an IDN, mailing over SMTPUTF8: its own mail must be
    # recognised as its own, not as mail from nobody.
    raw = "From: Bücher <news@bücher.example>\r\nSubject: Hallo\r\n\r\n".encode()
    facts = read_message(raw)
    assert facts.from_domain == "xn--bcher-kva.example"
    assert facts.from_orgs == ("xn--bcher-kva.example",)


def test_a_huge_header_is_bounded() -> None:
    raw = b"From: a@b.example\r\nSubject: " + b"spam " * 50_000 + b"\r\n\r\n"
    subject = read_message(raw).subject
    assert subject is not None
    assert subject.startswith("spam spam")
    assert len(subject) <= HEADER_TEXT_MAX


def test_authentication_results_are_kept_topmost_first() -> None:
    raw = (b"Authentication-Results: mx.home.example; dkim=pass header.d=acme.example\r\n"
           b"Authentication-Results: forged.example; dkim=pass header.d=evil.example\r\n"
           b"From: a@acme.example\r\n\r\nbody")
    assert read_message(raw).authentication_results == (
        "mx.home.example; dkim=pass header.d=acme.example",
        "forged.example; dkim=pass header.d=evil.example",
    )


def test_precedence_and_headers_for_fingerprints_but_never_the_body() -> None:
    raw = (b"From: a@acme.example\r\nPrecedence: bulk\r\nX-MC-User: a1b2c3\r\n\r\n"
           b"From: impostor@evil.example\r\nX-Secret-Body-Line: do not read\r\n")
    facts = read_message(raw)
    assert facts.precedence == "bulk"
    assert ("X-MC-User", "a1b2c3") in facts.headers
    # The body is not headers, even when it looks like them.
    assert facts.from_addresses == ("a@acme.example",)
    assert all(name != "X-Secret-Body-Line" for name, _ in facts.headers)


def test_the_number_of_headers_kept_is_bounded() -> None:
    raw = b"From: a@acme.example\r\n" + b"X-Junk: spam\r\n" * 10_000 + b"\r\nbody"
    facts = read_message(raw)
    assert 0 < len(facts.headers) <= HEADERS_KEPT
    assert facts.from_org == "acme.example"


# --- problems ---------------------------------------------------------------------


def test_nul_bytes_are_a_problem_but_the_rest_is_still_read() -> None:
    raw = b"From: news@acme.example\r\nSubject: Hel\x00lo\r\n\r\nbody\x00"
    facts = read_message(raw)
    assert "message contains NUL bytes" in facts.problems
    assert facts.from_org == "acme.example"
    assert facts.subject == "Hello"


def test_no_from_header_is_a_problem() -> None:
    facts = read_message(b"Subject: who sent this?\r\n\r\nbody")
    assert facts.problems == ("no From header",)
    assert facts.from_address is None
    assert facts.from_org is None
    assert facts.from_orgs == ()


def test_two_from_headers_are_a_problem_and_both_organisations_are_kept() -> None:
    facts = read_message(sample("spam-two-from.eml"))
    assert "2 From headers" in facts.problems
    assert facts.from_addresses == ("security@acme.co.uk", "winner@prize-centre.example")
    assert facts.from_orgs == ("acme.co.uk", "prize-centre.example")
    # The first From is what a mail client shows.
    assert facts.from_org == "acme.co.uk"


def test_an_unreadable_date_is_a_problem_and_no_date() -> None:
    facts = read_message(sample("spam-two-from.eml"))  # Date: 31 Feb 2026 25:61:00
    assert "unreadable Date header" in facts.problems
    assert facts.date is None


@pytest.mark.parametrize("value", [b"yesterday", b"Mon, 99 Foo 2026 10:00:00 +0000", b""])
def test_other_unreadable_dates(value: bytes) -> None:
    facts = read_message(b"From: a@b.example\r\nDate: " + value + b"\r\n\r\n")
    assert facts.date is None
    if value:
        assert "unreadable Date header" in facts.problems


def test_a_from_without_an_address_is_a_problem() -> None:
    facts = read_message(b"From: Just A Name\r\n\r\n")
    assert "From header has no address" in facts.problems
    assert facts.from_address is None


def test_a_from_on_a_public_suffix_has_no_organisation() -> None:
    facts = read_message(b"From: x@co.uk\r\n\r\n")
    assert facts.from_domain == "co.uk"
    assert facts.from_org is None
    assert facts.from_orgs == ()
    assert "From domain has no organisational domain" in facts.problems


def test_the_unreadable_placeholder_names_its_problem() -> None:
    facts = MessageFacts.unreadable("unreadable: boom")
    assert facts.problems == ("unreadable: boom",)
    assert facts.from_address is None and facts.from_orgs == ()


# --- hostile input never raises -------------------------------------------------------


def _check_facts(facts: MessageFacts) -> None:
    assert isinstance(facts, MessageFacts)
    assert all(isinstance(a, str) and "@" in a for a in facts.from_addresses)
    assert len(facts.from_orgs) <= len(facts.from_addresses)
    for text in (facts.subject, facts.message_id, facts.return_path, facts.list_unsubscribe):
        assert text is None or ("\x00" not in text and len(text) <= HEADER_TEXT_MAX)
    assert facts.date is None or facts.date.utcoffset() == timedelta(0)


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20260203)
    for _ in range(300):
        _check_facts(read_message(rng.randbytes(rng.randint(0, 600))))


def test_header_shaped_garbage_never_raises() -> None:
    rng = random.Random(6532)
    names = [b"From", b"Date", b"Subject", b"DKIM-Signature", b"Return-Path", b"Message-ID",
             b"List-Unsubscribe", b"Content-Type"]
    alphabet = b"=?:<>@;.,()\"'[]\\\r\n\t d=utf-8QBqb\x00\x80\xff\xc3\xa9abc+-0123456789"
    for _ in range(300):
        lines = [rng.choice(names) + b":" + bytes(rng.choice(alphabet)
                                                  for _ in range(rng.randint(0, 80)))
                 for _ in range(rng.randint(0, 10))]
        _check_facts(read_message(b"\r\n".join(lines) + b"\r\n\r\nbody"))


def test_a_damaged_real_message_never_raises_and_keeps_what_it_can() -> None:
    original = sample("newsletter-via-esp.eml")
    rng = random.Random(5321)
    for _ in range(200):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 30)):
            damaged[rng.randrange(len(damaged))] = rng.choice(b"\x00\xff\r\n:;=?<>@")
        _check_facts(read_message(bytes(damaged)))

"""Alias rules and domain names, tested with plain function calls.

An alias is `<slug>.<tag>@<canary domain>`; the tag is what makes it
unguessable, and `check_recipient` is what the listener asks at RCPT. The
organisational-domain rules decide whose mail counts as a company's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from canary.aliases import (
    RecipientKind,
    alias_local_part,
    alias_tag,
    check_recipient,
    company_name,
    slugify,
)
from canary.domains import (
    domain_in,
    nearest_listed,
    normalise_domain,
    organisational_domain,
    registrable_or_self,
)
from canary.errors import InvalidCompanyName, InvalidDomain

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
CANARY = "canary.example.org"
DOMAINS = frozenset({CANARY})


def expected_tag(secret: bytes, slug: str) -> str:
    """The tag as the design defines it, computed here without Canary's code."""
    digest = hmac.new(secret, slug.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:8]


def address_for(slug: str, secret: bytes = SECRET, domain: str = CANARY) -> str:
    return f"{slug}.{expected_tag(secret, slug)}@{domain}"


# --- slugify ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Fretwork Guitars Ltd", "fretwork-guitars-ltd"),
        ("ACME", "acme"),
        ("  Acme  ", "acme"),
        # Accents are folded to their base letters, not dropped with the letter.
        ("Crème Brûlée Café", "creme-brulee-cafe"),
        ("Müller & Söhne GmbH", "muller-sohne-gmbh"),
        # Punctuation of any length collapses to one hyphen, never at the ends.
        ("AT&T", "at-t"),
        ("Barnes & Noble, Inc.", "barnes-noble-inc"),
        ("--Yahoo!--", "yahoo"),
        ("7-Eleven", "7-eleven"),
        # Full-width Latin letters (as typed with a CJK input method) fold to ASCII.
        ("\uff26\uff55\uff4c\uff4c \uff37\uff49\uff44\uff54\uff48", "full-width"),
    ],
)
def test_slugify_makes_a_readable_ascii_slug(name: str, slug: str) -> None:
    assert slugify(name) == slug


@pytest.mark.parametrize("name", ["", "   ", "!!!", "&", "株式会社", "—"])
def test_a_name_without_letters_or_digits_is_refused(name: str) -> None:
    with pytest.raises(InvalidCompanyName) as raised:
        slugify(name)
    assert "letters or digits" in str(raised.value)


def test_a_long_name_gives_a_bounded_slug_that_does_not_end_in_a_hyphen() -> None:
    # 39 letters, then a space: a cut at 40 characters must not leave "…-".
    slug = slugify("a" * 39 + " " + "b" * 50)
    assert len(slug) <= 40
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert slug.startswith("a" * 39)


# --- the tag ----------------------------------------------------------------


@pytest.mark.parametrize("slug", ["acme", "fretwork-guitars-ltd", "acme-2", "7-eleven"])
def test_tag_is_the_start_of_base32_hmac_sha256_of_the_slug(slug: str) -> None:
    tag = alias_tag(SECRET, slug)
    assert tag == expected_tag(SECRET, slug)
    assert re.fullmatch(r"[a-z2-7]{8}", tag)
    assert alias_local_part(SECRET, slug) == f"{slug}.{tag}"


def test_the_tag_depends_on_the_secret_and_on_the_slug() -> None:
    assert alias_tag(SECRET, "acme") != alias_tag(OTHER_SECRET, "acme")
    assert alias_tag(SECRET, "acme") != alias_tag(SECRET, "acme-2")


# --- check_recipient ----------------------------------------------------------


def test_a_valid_alias_is_a_candidate_with_its_parts() -> None:
    address = address_for("acme")
    recipient = check_recipient(address, DOMAINS, SECRET)
    assert recipient.kind is RecipientKind.CANDIDATE
    assert recipient.address == address
    assert recipient.local_part == address.partition("@")[0]
    assert recipient.domain == CANARY


def test_a_well_formed_tag_for_a_slug_never_issued_is_still_a_candidate() -> None:
    # Only the store knows what was issued; the rule only checks the tag.
    assert check_recipient(address_for("nobody"), DOMAINS, SECRET).kind is RecipientKind.CANDIDATE


@pytest.mark.parametrize(
    "address",
    [
        "acme.abcdefgh@elsewhere.example",  # another domain: Canary is never a relay
        "acme.abcdefgh@sub.canary.example.org",  # a subdomain is another domain too
        "postmaster",  # no @ at all
        "@canary.example.org",  # no local part
        "acme@",  # no domain
        "acme@bad..domain",  # not a host name
        "acme@[192.0.2.1]",  # an address literal
        "",
        "<>",  # the null sender
    ],
)
def test_anything_not_on_a_canary_domain_is_foreign(address: str) -> None:
    assert check_recipient(address, DOMAINS, SECRET).kind is RecipientKind.FOREIGN


def test_a_foreign_recipient_reports_the_domain_normalised() -> None:
    recipient = check_recipient("Someone@Elsewhere.Example.", DOMAINS, SECRET)
    assert recipient.kind is RecipientKind.FOREIGN
    assert recipient.address == "Someone@elsewhere.example"


def test_the_right_tag_under_another_secret_is_not_an_alias() -> None:
    recipient = check_recipient(address_for("acme", secret=OTHER_SECRET), DOMAINS, SECRET)
    assert recipient.kind is RecipientKind.NOT_AN_ALIAS


def test_a_tag_of_another_slug_is_not_an_alias() -> None:
    stolen = expected_tag(SECRET, "acme")
    recipient = check_recipient(f"megamart.{stolen}@{CANARY}", DOMAINS, SECRET)
    assert recipient.kind is RecipientKind.NOT_AN_ALIAS
    # Probes are recorded, so the address comes back normalised for storage.
    assert recipient.address == f"megamart.{stolen}@{CANARY}"
    assert recipient.domain == CANARY


@pytest.mark.parametrize(
    "local_part",
    [
        "acme",  # no tag
        "acme.",  # empty tag
        ".{tag}",  # no slug
        "acme.{short}",  # tag too short
        "acme.{tag}a",  # tag too long
        "acme.{tag1}",  # 1 is not a base32 digit
        "-acme.{tag}",  # slug starts with a hyphen
        "acme-.{tag}",  # slug ends with a hyphen
        "ac--me.{tag}",  # doubled hyphen: slugify never makes one
        "ac_me.{tag}",  # underscore
        "postmaster",
    ],
)
def test_a_malformed_local_part_on_a_canary_domain_is_not_an_alias(local_part: str) -> None:
    tag = expected_tag(SECRET, "acme")
    local = local_part.format(tag=tag, short=tag[:7], tag1=tag[:7] + "1")
    recipient = check_recipient(f"{local}@{CANARY}", DOMAINS, SECRET)
    assert recipient.kind is RecipientKind.NOT_AN_ALIAS


def test_upper_case_and_angle_brackets_reach_the_alias() -> None:
    address = address_for("acme")
    recipient = check_recipient(f" <{address.upper()}> ", DOMAINS, SECRET)
    assert recipient.kind is RecipientKind.CANDIDATE
    assert recipient.address == address


@pytest.mark.parametrize("detail", ["+shop", "+", "+a+b", "+Newsletter.2024"])
def test_a_plus_detail_reaches_the_alias_and_is_dropped(detail: str) -> None:
    address = address_for("acme")
    local, _, domain = address.partition("@")
    recipient = check_recipient(f"{local}{detail}@{domain}", DOMAINS, SECRET)
    assert recipient.kind is RecipientKind.CANDIDATE
    assert recipient.address == address


def test_an_idn_canary_domain_accepts_both_u_labels_and_a_labels() -> None:
    # "bücher" → "xn--bcher-kva" is the textbook Punycode example (RFC 3492 style).
    domains = frozenset({normalise_domain("bücher.example")})
    assert domains == {"xn--bcher-kva.example"}
    local = f"acme.{expected_tag(SECRET, 'acme')}"
    for written in (f"{local}@bücher.example", f"{local}@BÜCHER.example",
                    f"{local}@xn--bcher-kva.example"):
        recipient = check_recipient(written, domains, SECRET)
        assert recipient.kind is RecipientKind.CANDIDATE, written
        assert recipient.address == f"{local}@xn--bcher-kva.example"


def test_several_canary_domains_each_accept_the_alias() -> None:
    domains = frozenset({CANARY, "aliases.example.net"})
    for domain in domains:
        assert check_recipient(address_for("acme", domain=domain), domains, SECRET).kind is (
            RecipientKind.CANDIDATE
        )


# --- domains ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "organisation"),
    [
        ("news.mail.acme.co.uk", "acme.co.uk"),
        ("acme.co.uk", "acme.co.uk"),
        ("Mail.Example.COM.", "example.com"),
        ("bounce.e.esp.example", "esp.example"),
        ("shop.bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_organisational_domain_is_the_registrable_domain(domain: str, organisation: str) -> None:
    assert organisational_domain(domain) == organisation


@pytest.mark.parametrize("domain", ["co.uk", "com", "uk", "", "bad..domain", "[192.0.2.1]",
                                    "-acme.example", "a" * 64 + ".example"])
def test_a_public_suffix_or_invalid_name_has_no_organisation(domain: str) -> None:
    assert organisational_domain(domain) is None


def test_registrable_or_self_gives_the_organisation_of_a_declared_domain() -> None:
    assert registrable_or_self("news.acme.co.uk") == "acme.co.uk"
    assert registrable_or_self("ACME.example") == "acme.example"


@pytest.mark.parametrize("domain", ["co.uk", "com"])
def test_a_public_suffix_cannot_be_a_company_domain(domain: str) -> None:
    with pytest.raises(InvalidDomain) as raised:
        registrable_or_self(domain)
    assert domain in str(raised.value)


@pytest.mark.parametrize("domain", ["", "  ", "bad..domain", "under_score.example", "localhost"])
def test_an_invalid_declared_domain_is_refused_with_a_sentence(domain: str) -> None:
    with pytest.raises(InvalidDomain) as raised:
        registrable_or_self(domain)
    assert str(raised.value).endswith(".")


def test_normalise_domain_lowers_strips_the_root_dot_and_uses_a_labels() -> None:
    assert normalise_domain(" Canary.Example.ORG. ") == "canary.example.org"
    assert normalise_domain("Bücher.Example") == "xn--bcher-kva.example"
    assert normalise_domain("xn--bcher-kva.example") == "xn--bcher-kva.example"


@pytest.mark.parametrize("name", ["Acme\x00Evil", "Acme\nLtd", "Acme\tLtd", "Acme\x1b[31m"])
def test_a_name_with_a_control_character_is_refused_on_every_database(name: str) -> None:
    with pytest.raises(InvalidCompanyName) as raised:
        company_name(name)
    assert "control character" in str(raised.value) and "one line" in str(raised.value)


def test_a_name_is_kept_trimmed() -> None:
    assert company_name("  Fretwork Guitars Ltd \u00e9  ") == "Fretwork Guitars Ltd \u00e9"


@pytest.mark.parametrize(("text", "domain"), [
    ("<Bounce@Mail.Acme.example>", "mail.acme.example"), ("acme.example.", "acme.example"),
    ("news@Bücher.example", "xn--bcher-kva.example"), ("", None), ("<>", None),
    ("x@", None), ("not a domain", None), ("a" * 300 + ".example", None),
])
def test_domain_in_reads_a_domain_or_an_address_and_never_raises(text: str,
                                                                 domain: str | None) -> None:
    assert domain_in(text) == domain


@pytest.mark.parametrize(("domain", "found"), [
    ("esp.example", ("esp.example", "ESP")),
    ("eu.bounce.esp.example", ("bounce.esp.example", "bounces")),
    ("other.esp.example", ("esp.example", "ESP")),
    ("acme.example", None),
    # The walk stops at the registrable domain: a listed public suffix never matches.
    ("shop.co.uk", None),
    # Not normalised: nothing is found, and the walk still ends.
    ("MAIL.Esp.Example", None),
    ("co.uk", None),
])
def test_nearest_listed_finds_the_closest_listed_parent_below_the_public_suffix(
        domain: str, found: tuple[str, str] | None) -> None:
    table = {"esp.example": "ESP", "bounce.esp.example": "bounces", "co.uk": "suffix"}
    assert nearest_listed(domain, table) == found

"""Look-alike domains of a company's own: the skeleton, the edit distance, the rule."""

from __future__ import annotations

import pytest

from canary.lookalike import LookAlikeKind, distance, lookalike, lookalike_host, skeleton

CYRILLIC_E, CYRILLIC_A, GREEK_O = "\u0435", "\u0430", "\u03bf"
OWN = ("megamart.example",)


def ace(text: str) -> str:
    return text.encode("idna").decode("ascii")


@pytest.mark.parametrize(("label", "shape"), [
    ("megamart", "megamart"),
    (f"m{CYRILLIC_E}g{CYRILLIC_A}mart", "megamart"),
    (ace(f"m{CYRILLIC_E}gamart.example").split(".")[0], "megamart"),
    ("megarnart", "megamart"),
    ("paypa1", "paypal"),
    ("g00gle", "google"),
    ("m\u00e9gamart", "megamart"),
    (f"g{GREEK_O}{GREEK_O}gle", "google"),
])
def test_the_skeleton_is_what_a_reader_sees(label: str, shape: str) -> None:
    assert skeleton(label) == shape


@pytest.mark.parametrize(("a", "b", "edits"), [
    ("megamart", "megamart", 0), ("megamart", "megamrat", 1), ("megamart", "megamarts", 1),
    ("megamart", "egamart", 1), ("megamart", "megaparts", 2), ("megamart", "dealblaster", 3),
])
def test_distance_counts_a_swap_as_one_edit(a: str, b: str, edits: int) -> None:
    assert distance(a, b, 2) == min(edits, 3)


@pytest.mark.parametrize(("domain", "kind"), [
    (ace(f"meg{CYRILLIC_A}mart.example"), LookAlikeKind.HOMOGLYPH),
    ("megarnart.example", LookAlikeKind.HOMOGLYPH),
    ("megamrat.example", LookAlikeKind.TYPO),
    ("megamart-security.example", LookAlikeKind.BRAND_ADDITION),
    ("securemegamart.example", LookAlikeKind.BRAND_ADDITION),
    ("megamart24.example", LookAlikeKind.BRAND_ADDITION),
    ("megamart.net", LookAlikeKind.OTHER_SUFFIX),
])
def test_look_alikes_of_the_companys_domain(domain: str, kind: LookAlikeKind) -> None:
    found = lookalike(domain, OWN, ["megamart"])
    assert found is not None and found.kind is kind
    assert found.imitates == "megamart.example"
    assert domain in found.describe(domain)


@pytest.mark.parametrize("domain", [
    "megamart.example", "dealblaster.example", "megaphone.example", "martinez.example",
    "applebees.example", "megamarket-research.example",
])
def test_honest_names_are_no_look_alikes(domain: str) -> None:
    assert lookalike(domain, OWN, ["megamart"]) is None


def test_the_companys_name_is_a_brand_too() -> None:
    found = lookalike("fretworkguitars-deals.example", ("fretwork.example",),
                      ["fretwork-guitars"])
    assert found is not None and found.kind is LookAlikeKind.BRAND_ADDITION


def test_short_names_are_not_judged_by_spelling() -> None:
    assert lookalike("acne.example", ("acme.example",), ["acme"]) is None
    assert lookalike("acme-login.example", ("acme.example",), ["acme"]) is not None


@pytest.mark.parametrize(("domain", "own", "found"), [
    ("fabel.example", ("fable.example",), True),
    ("faable.example", ("fable.example",), True),
    ("table.example", ("fable.example",), False),
    ("fable.example", ("fable.example",), False),
    ("megamrat.example", OWN, True),
])
def test_short_names_count_only_swapped_or_doubled_letters(domain: str, own: tuple[str, ...],
                                                           found: bool) -> None:
    """Five- and six-letter names have honest neighbours one letter away."""
    assert (lookalike(domain, own) is not None) is found


@pytest.mark.parametrize(("host", "kind"), [
    ("megamart.verify-account.example", LookAlikeKind.SUBDOMAIN),
    ("secure.m\u0435gamart.login.example".encode("idna").decode(), LookAlikeKind.SUBDOMAIN),
    ("mail.megamart-security.example", LookAlikeKind.BRAND_ADDITION),
    ("news.megaphone.example", None),
    ("megamart.example", None),
    ("deals.megamart.example", None),
])
def test_the_company_name_as_a_subdomain_of_another_domain(host: str,
                                                           kind: LookAlikeKind | None) -> None:
    found = lookalike_host(host, OWN, ("megamart",))
    assert (found.kind if found else None) is kind

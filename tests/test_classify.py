"""How a message relates to the company whose alias received it."""

from __future__ import annotations

import pytest
from factories import dkim, make_message

from canary.authentication import (
    NOT_AUTHENTICATED,
    Authentication,
    DkimResult,
    DmarcResult,
    Result,
    SpfResult,
)
from canary.classify import Classification, Relation, classify
from canary.esp import EspSending
from canary.message import read_message
from canary.report import Verdict, verdict_for

ACME = ["acme.example", "acme.co.uk"]


def classify_raw(raw: bytes, company_domains: list[str]) -> Classification:
    """Classify as analysis does: read the message, then classify its From organisations."""
    return classify(read_message(raw).from_orgs, company_domains)


def test_mail_from_the_companys_own_domain_is_first_party() -> None:
    result = classify(["acme.example"], ACME)
    assert result.relation is Relation.FIRST_PARTY
    assert result.sender_org == "acme.example"
    assert "acme.example" in result.reason


def test_a_subdomain_of_the_company_is_first_party_through_its_organisation() -> None:
    raw = make_message(sender='"Acme" <deals@news.mail.acme.co.uk>')
    result = classify_raw(raw, ACME)
    assert result.relation is Relation.FIRST_PARTY
    assert result.sender_org == "acme.co.uk"


def test_several_from_addresses_all_of_the_company_are_first_party() -> None:
    result = classify(["acme.example", "acme.co.uk"], ACME)
    assert result.relation is Relation.FIRST_PARTY


def test_another_organisation_is_unverified_and_named() -> None:
    result = classify(["dealblaster.example"], ACME)
    assert result.relation is Relation.UNVERIFIED
    assert result.sender_org == "dealblaster.example"
    assert "dealblaster.example" in result.reason


def test_a_company_with_no_domains_has_no_first_party_mail() -> None:
    result = classify(["acme.example"], [])
    assert result.relation is Relation.UNVERIFIED
    assert result.sender_org == "acme.example"


def test_a_lookalike_domain_is_not_the_company() -> None:
    # Same label, other suffix: a different organisation under the PSL.
    result = classify_raw(make_message(sender="news@acme.example.net"), ACME)
    assert result.relation is Relation.UNVERIFIED
    assert result.sender_org == "example.net"


@pytest.mark.parametrize("order", [["acme.example", "prize-centre.example"],
                                   ["prize-centre.example", "acme.example"]])
def test_two_from_headers_mixing_the_company_with_another_are_spoofed(
    order: list[str],
) -> None:
    # The repeated-From trick: a mail client may show the company's From while the
    # other one is the real sender. Whoever did it knows whose customer this is.
    result = classify(order, ACME)
    assert result.sender_org == "prize-centre.example"
    assert "prize-centre.example" in result.reason
    # Whatever the order, the foreign organisation is never called the company's.
    assert "company's prize-centre.example" not in result.reason
    assert "acme.example" in result.reason
    assert result.relation is Relation.SPOOFED


def test_two_from_headers_of_other_organisations_are_unverified_naming_the_first() -> None:
    result = classify(["prize-centre.example", "dealblaster.example"], ACME)
    assert result.relation is Relation.UNVERIFIED
    assert result.sender_org == "prize-centre.example"
    assert "prize-centre.example" in result.reason


def test_two_from_headers_in_a_real_message_name_the_foreign_organisation() -> None:
    raw = (b"From: Acme Security <security@acme.co.uk>\r\n"
           b"From: Prize Centre <winner@prize-centre.example>\r\n"
           b"Subject: Claim your reward\r\n\r\nYou won.")
    result = classify_raw(raw, ACME)
    assert result.relation is Relation.SPOOFED
    assert result.sender_org == "prize-centre.example"
    assert verdict_for([result.relation]) is Verdict.LEAKED


def test_no_from_is_unverified_with_no_sender() -> None:
    result = classify([], ACME)
    assert result.relation is Relation.UNVERIFIED
    assert result.sender_org is None
    assert "From" in result.reason


def test_a_message_without_from_is_unverified_with_no_sender() -> None:
    result = classify_raw(b"Subject: hello\r\n\r\nbody", ACME)
    assert result.relation is Relation.UNVERIFIED
    assert result.sender_org is None


def test_company_domains_may_be_any_iterable() -> None:
    assert classify(["acme.example"], iter(ACME)).relation is Relation.FIRST_PARTY
    assert classify(["acme.example"], frozenset(ACME)).relation is Relation.FIRST_PARTY


@pytest.mark.parametrize(
    ("relation", "expected"),
    [
        (Relation.FIRST_PARTY, True),
        (Relation.PROCESSOR, True),
        (Relation.THIRD_PARTY, False),
        (Relation.UNVERIFIED, False),
        (Relation.SPOOFED, False),
    ],
)
def test_only_the_company_and_its_processors_are_expected(relation: Relation,
                                                          expected: bool) -> None:
    assert relation.expected is expected


def test_relation_values_are_the_documented_names() -> None:
    assert {r.value for r in Relation} == {
        "first_party", "processor", "third_party", "unverified", "spoofed"
    }


# --- with authentication results ---------------------------------------------------------


def auth(*, dmarc: Result = Result.NONE, dkim_aligned: str | None = None,
         spf_aligned: str | None = None, spf: Result = Result.NONE,
         spf_domain: str | None = None) -> Authentication:
    """What the checks found, as plain values (the DNS side is tested elsewhere)."""
    return Authentication(
        spf=SpfResult(spf, spf_domain),
        dkim=(DkimResult(Result.PASS, dkim_aligned),) if dkim_aligned else (),
        dmarc=DmarcResult(dmarc, "reject" if dmarc is Result.FAIL else None,
                          None, dkim_aligned, spf_aligned),
    )


ESP = EspSending("Mailchimp", "a1b2c3", dkim("mcsv.example"))


def test_the_companys_mail_with_aligned_dkim_is_first_party_and_says_how() -> None:
    result = classify(["acme.example"], ACME, auth(dmarc=Result.PASS,
                                                   dkim_aligned="acme.example"))
    assert result.relation is Relation.FIRST_PARTY
    assert result.authenticated_by == dkim("acme.example")


def test_the_companys_domain_failing_dmarc_is_spoofed() -> None:
    result = classify(["acme.example"], ACME, auth(dmarc=Result.FAIL))
    assert result.relation is Relation.SPOOFED
    assert result.sender_org == "acme.example"
    assert "DMARC" in result.reason


def test_the_companys_domain_failing_its_own_spf_is_spoofed() -> None:
    result = classify(["acme.example"], ACME, auth(spf=Result.FAIL,
                                                   spf_domain="bounce.acme.example"))
    assert result.relation is Relation.SPOOFED


def test_the_companys_mail_through_an_authenticated_esp_is_a_processor() -> None:
    result = classify(["acme.example"], ACME, auth(), ESP)
    assert result.relation is Relation.PROCESSOR
    assert result.authenticated_by == dkim("mcsv.example")
    assert "Mailchimp" in result.reason


def test_the_companys_domain_with_nothing_to_check_against_stays_first_party() -> None:
    result = classify(["acme.example"], ACME, auth())
    assert result.relation is Relation.FIRST_PARTY
    assert result.authenticated_by == NOT_AUTHENTICATED


def test_another_organisation_authenticated_as_itself_is_a_third_party() -> None:
    result = classify(["broker.example"], ACME, auth(dmarc=Result.PASS,
                                                     dkim_aligned="broker.example"))
    assert result.relation is Relation.THIRD_PARTY
    assert result.sender_org == "broker.example"
    assert result.authenticated_by == dkim("broker.example")
    assert verdict_for([result.relation]) is Verdict.SHARED


def test_another_organisation_sending_through_an_authenticated_esp_is_a_third_party() -> None:
    result = classify(["broker.example"], ACME, auth(), ESP)
    assert result.relation is Relation.THIRD_PARTY


def test_another_organisation_without_authentication_is_unverified() -> None:
    result = classify(["spam.example"], ACME, auth(spf=Result.SOFTFAIL))
    assert result.relation is Relation.UNVERIFIED
    assert result.authenticated_by == NOT_AUTHENTICATED
    assert "spam.example" in result.reason

"""Verdicts and the per-company report, from plain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from commands import SCHEMAS, assert_valid_report
from factories import dkim, spf

from canary.authentication import NOT_AUTHENTICATED, AuthenticatedBy
from canary.relation import Relation
from canary.report import (
    EXAMPLES_KEPT,
    SCHEMA_VERSION,
    UNKNOWN_SENDER,
    AliasView,
    CompanyFacts,
    CompanyReport,
    Confidence,
    Sighting,
    Verdict,
    company_report,
    likely_brokers,
    report_document,
    worst_first,
)
from canary.senders import SenderKind

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def alias(slug: str = "acme", issued: float = 0, messages: int = 0) -> AliasView:
    return AliasView(f"{slug}.abcdefgh@canary.example.org", slug, day(issued), messages)


def seen(n: float, relation: Relation | None, org: str | None, slug: str = "acme", *,
         authenticated_by: AuthenticatedBy | None = None, temperror: str | None = None,
         kind: SenderKind = SenderKind.ORGANISATION, via: str | None = None,
         set_aside: bool = False) -> Sighting:
    return Sighting(received_at=day(n), alias_slug=slug, relation=relation, sender_org=org,
                    from_address=f"news@{org}" if org else None, subject="Hello",
                    message_id=f"<{n}@{org}>", sha256=f"{int(n * 1000):064x}",
                    authenticated_by=authenticated_by, temperror=temperror,
                    sender_kind=kind if relation is not None else None, via=via,
                    set_aside=set_aside)


def facts(name: str = "Acme", *sightings: Sighting, aliases: tuple[AliasView, ...] = (),
          domains: tuple[str, ...] = ("acme.example",),
          flagged: tuple[str, ...] = ()) -> CompanyFacts:
    slug = name.lower().replace(" ", "-")
    return CompanyFacts(name=name, slug=slug, note=None, domains=domains,
                        aliases=aliases or (alias(slug),), sightings=sightings, flagged=flagged)


# --- verdict_for -----------------------------------------------------------------


DKIM_B = dkim("b.example")


@pytest.mark.parametrize(
    ("sightings", "verdict"),
    [
        ([], Verdict.QUIET),
        ([seen(1, None, None)], Verdict.PENDING),
        ([seen(1, None, None, set_aside=True)], Verdict.PENDING),
        ([seen(1, Relation.FIRST_PARTY, "acme.example")], Verdict.CLEAN),
        ([seen(1, Relation.FIRST_PARTY, "acme.example"), seen(2, Relation.PROCESSOR, "acme")],
         Verdict.CLEAN),
        ([seen(1, Relation.UNPROVEN, "acme.example")], Verdict.CLEAN),
        ([seen(1, Relation.FIRST_PARTY, "acme.example"), seen(2, Relation.UNVERIFIED, "x")],
         Verdict.LEAKED),
        ([seen(1, Relation.SPOOFED, "acme.example")], Verdict.LEAKED),
        ([seen(1, Relation.IMPERSONATION, "acme-security.example")], Verdict.LEAKED),
        ([seen(1, Relation.BACKSCATTER, "mx.example")], Verdict.LEAKED),
        ([seen(1, Relation.THIRD_PARTY, "b.example", authenticated_by=DKIM_B)], Verdict.SHARED),
        ([seen(1, Relation.THIRD_PARTY, "Cafe Rouge", kind=SenderKind.MERCHANT, via="Square")],
         Verdict.SHARED),
        # Authenticated, but not an identifiable business: the address is out, no more.
        ([seen(1, Relation.THIRD_PARTY, "jane@gmail.com", kind=SenderKind.MAILBOX)],
         Verdict.LEAKED),
        ([seen(1, Relation.THIRD_PARTY, "spammers.googlegroups.com", kind=SenderKind.GROUP)],
         Verdict.LEAKED),
        ([seen(1, Relation.THIRD_PARTY, "x.onmicrosoft.com", kind=SenderKind.TENANT)],
         Verdict.LEAKED),
        ([seen(1, Relation.UNVERIFIED, "x"), seen(2, Relation.THIRD_PARTY, "b.example"),
          seen(3, Relation.FIRST_PARTY, "acme.example")], Verdict.SHARED),
    ],
)
def test_verdicts_say_only_what_the_evidence_proves(sightings: list[Sighting],
                                                    verdict: Verdict) -> None:
    assert company_report(facts("Acme", *sightings)).verdict is verdict


def test_verdicts_are_ordered_by_severity() -> None:
    order = [Verdict.SHARED, Verdict.LEAKED, Verdict.CLEAN, Verdict.PENDING, Verdict.QUIET]
    assert sorted(Verdict, key=lambda v: -v.severity) == order


# --- company_report ----------------------------------------------------------------


@pytest.fixture
def leaked_acme() -> CompanyReport:
    """Acme's alias: its own newsletter weekly, then a marketer from day 24, one spam."""
    return company_report(facts(
        "Acme",
        seen(31, Relation.UNVERIFIED, "dealblaster.example"),
        seen(1, Relation.FIRST_PARTY, "acme.example"),
        seen(8, Relation.FIRST_PARTY, "acme.example"),
        seen(24.8, Relation.UNVERIFIED, "dealblaster.example"),
        seen(27.8, Relation.UNVERIFIED, "dealblaster.example"),
        seen(15, Relation.FIRST_PARTY, "acme.example"),
        seen(33.2, Relation.UNVERIFIED, None),
        seen(40, None, "later.example"),  # received, not analysed yet
    ))


def test_a_company_with_unverified_mail_is_leaked(leaked_acme: CompanyReport) -> None:
    assert leaked_acme.verdict is Verdict.LEAKED


def test_counts_cover_every_message_and_relation(leaked_acme: CompanyReport) -> None:
    # 8 received; 1 not analysed yet (and not waiting on DNS); 3 the company's own;
    # 4 unverified, all of them unexpected; none of the company's own mail is marked marketing.
    assert leaked_acme.counts.to_dict() == {
        "total": 8, "pending": 1, "failed": 0, "temperror": 0,
        "first_party": 3, "processor": 0, "third_party": 0, "unverified": 4, "spoofed": 0,
        "impersonation": 0, "backscatter": 0, "unproven": 0,
        "unexpected": 4, "marketing": 0,
    }


def test_senders_have_first_and_last_sighting_and_count(leaked_acme: CompanyReport) -> None:
    by_org = {s.organisation: s for s in leaked_acme.senders}
    # The pending message's sender is not a sender yet: nothing is known about it.
    assert set(by_org) == {"dealblaster.example", "acme.example", UNKNOWN_SENDER}
    marketer = by_org["dealblaster.example"]
    assert (marketer.relation, marketer.first_seen, marketer.last_seen, marketer.count) == (
        Relation.UNVERIFIED, day(24.8), day(31), 3)
    own = by_org["acme.example"]
    assert (own.relation, own.first_seen, own.last_seen, own.count) == (
        Relation.FIRST_PARTY, day(1), day(15), 3)
    assert by_org[UNKNOWN_SENDER].count == 1


def test_unexpected_senders_come_first_oldest_first(leaked_acme: CompanyReport) -> None:
    assert [s.organisation for s in leaked_acme.senders] == [
        "dealblaster.example", UNKNOWN_SENDER, "acme.example"]
    assert [s.organisation for s in leaked_acme.unexpected] == [
        "dealblaster.example", UNKNOWN_SENDER]


def test_days_to_first_unexpected_counts_whole_days_from_issue(
    leaked_acme: CompanyReport,
) -> None:
    # Issued on day 0; the marketer first wrote on day 24.8.
    assert leaked_acme.days_to_first_unexpected == 24


def test_the_timeline_is_in_order_of_receipt(leaked_acme: CompanyReport) -> None:
    times = [s.received_at for s in leaked_acme.timeline]
    assert times == sorted(times)
    assert len(times) == 8


def test_days_to_first_unexpected_counts_from_the_alias_that_received_it() -> None:
    report = company_report(facts(
        "Acme",
        seen(32.5, Relation.UNVERIFIED, "dealblaster.example", slug="acme-2"),
        aliases=(alias("acme", 0), alias("acme-2", 30)),
    ))
    assert report.days_to_first_unexpected == 2
    assert report.issued_at == day(0)


def test_a_company_with_only_its_own_mail_is_clean() -> None:
    report = company_report(facts("Acme", seen(1, Relation.FIRST_PARTY, "acme.example"),
                                  seen(2, Relation.PROCESSOR, "acme.example")))
    assert report.verdict is Verdict.CLEAN
    assert report.days_to_first_unexpected is None
    assert report.unexpected == ()
    assert report.counts.unexpected == 0


def test_a_company_without_mail_is_quiet() -> None:
    report = company_report(facts("Acme"))
    assert report.verdict is Verdict.QUIET
    assert report.senders == ()
    assert report.counts.total == 0
    assert report.days_to_first_unexpected is None


def test_an_authenticated_third_party_makes_it_shared() -> None:
    report = company_report(facts("Acme", seen(3, Relation.UNVERIFIED, "spam.example"),
                                  seen(5, Relation.THIRD_PARTY, "broker.example")))
    assert report.verdict is Verdict.SHARED
    assert report.days_to_first_unexpected == 3


def test_mail_waiting_for_dns_is_pending_and_counted_as_such() -> None:
    report = company_report(facts(
        "Acme", seen(1, Relation.FIRST_PARTY, "acme.example"),
        seen(2, None, "x.example", temperror="SPF: DNS timeout"), seen(3, None, "y.example")))
    assert (report.counts.pending, report.counts.temperror) == (2, 1)
    # What is known so far decides the verdict; pending mail does not count as clean or not.
    assert report.verdict is Verdict.CLEAN


def test_each_sender_keeps_how_it_authenticated_and_example_messages() -> None:
    sightings = [seen(10 + n, Relation.THIRD_PARTY, "broker.example",
                      authenticated_by=dkim("broker.example") if n % 2 else spf("broker.example"))
                 for n in range(5)]
    report = company_report(facts("Acme", *sightings))
    (sender,) = report.senders
    assert sender.authenticated_by == (spf("broker.example"), dkim("broker.example"))
    assert sender.authenticated
    # A few examples, oldest first, each with the Message-ID and raw SHA-256 to check.
    assert len(sender.examples) == EXAMPLES_KEPT < len(sightings)
    assert [e.received_at for e in sender.examples] == [day(10), day(11), day(12)]
    assert sender.examples[0].sha256 == sightings[0].sha256
    assert sender.examples[0].message_id == sightings[0].message_id


def test_unauthenticated_senders_say_so() -> None:
    report = company_report(facts("Acme", seen(1, Relation.UNVERIFIED, "spam.example")))
    (sender,) = report.senders
    assert sender.authenticated_by == (NOT_AUTHENTICATED,)
    assert not sender.authenticated


def test_flagged_senders_are_marked_and_still_count_as_unexpected() -> None:
    report = company_report(facts("Acme", seen(1, Relation.UNVERIFIED, "spam.example"),
                                  flagged=("spam.example",)))
    assert report.verdict is Verdict.LEAKED
    assert [(s.organisation, s.flagged) for s in report.unexpected] == [("spam.example", True)]


def _marketer(*days: float, auth: AuthenticatedBy | None = DKIM_B, org: str = "b.example",
              kind: SenderKind = SenderKind.ORGANISATION) -> list[Sighting]:
    return [seen(n, Relation.THIRD_PARTY, org, authenticated_by=auth, kind=kind,
                 via="Square" if kind is SenderKind.MERCHANT else None) for n in days]


@pytest.mark.parametrize(
    ("sightings", "verdict", "confidence"),
    [
        # One message is never high, however well it authenticated.
        (_marketer(1), Verdict.SHARED, Confidence.MEDIUM),
        (_marketer(1, auth=spf("b.example")), Verdict.SHARED, Confidence.LOW),
        # Many messages over weeks, DKIM-authenticated as itself: high.
        (_marketer(1, 5, 9, 14), Verdict.SHARED, Confidence.HIGH),
        # …but SPF alone never reaches high on a few messages.
        (_marketer(1, 5, 9, auth=spf("b.example")), Verdict.SHARED, Confidence.MEDIUM),
        # A merchant named by a platform did not authenticate as itself.
        (_marketer(1, 5, 9, 14, org="Cafe Rouge", kind=SenderKind.MERCHANT), Verdict.SHARED,
         Confidence.MEDIUM),
        # Pending mail lowers it.
        ([*_marketer(1, 5, 9, 14), seen(20, None, None)], Verdict.SHARED, Confidence.MEDIUM),
        ([seen(1, Relation.SPOOFED, "acme.example")], Verdict.LEAKED, Confidence.MEDIUM),
        ([seen(1, Relation.IMPERSONATION, "acme-login.example")], Verdict.LEAKED,
         Confidence.MEDIUM),
        ([seen(1, Relation.UNVERIFIED, "spam.example")], Verdict.LEAKED, Confidence.LOW),
        ([seen(1, Relation.BACKSCATTER, "mx.example")], Verdict.LEAKED, Confidence.LOW),
        ([seen(1, Relation.FIRST_PARTY, "acme.example")], Verdict.CLEAN, Confidence.MEDIUM),
        ([seen(n, Relation.FIRST_PARTY, "acme.example") for n in (1, 2, 3)], Verdict.CLEAN,
         Confidence.HIGH),
        ([seen(1, Relation.UNPROVEN, "acme.example")], Verdict.CLEAN, Confidence.LOW),
        ([seen(1, None, None)], Verdict.PENDING, Confidence.LOW),
        ([], Verdict.QUIET, Confidence.HIGH),
    ],
)
def test_confidence_follows_the_strength_of_the_evidence(
    sightings: list[Sighting], verdict: Verdict, confidence: Confidence,
) -> None:
    # A DKIM signature proves more than an SPF pass; forged mail proves someone knows
    # whose customer this is; plain spam proves only that the address got out.
    report = company_report(facts("Acme", *sightings))
    assert (report.verdict, report.confidence) == (verdict, confidence)
    assert report.confidence_reason


def test_a_third_party_on_several_companies_aliases_is_a_likely_broker() -> None:
    reports = [
        company_report(facts("Acme", seen(1, Relation.THIRD_PARTY, "broker.example"))),
        company_report(facts("Beta", seen(2, Relation.THIRD_PARTY, "broker.example"),
                             seen(3, Relation.THIRD_PARTY, "once.example"))),
        # Unauthenticated mail proves nothing about who holds the list.
        company_report(facts("Gamma", seen(4, Relation.UNVERIFIED, "broker.example"))),
    ]
    brokers = likely_brokers(reports)
    assert [(b.organisation, b.companies) for b in brokers] == [
        ("broker.example", ("Acme", "Beta"))]


# --- worst_first ---------------------------------------------------------------------


def test_worst_first_orders_by_verdict_then_unexpected_count_then_name() -> None:
    reports = [
        company_report(facts("quiet co")),
        company_report(facts("Clean Co", seen(1, Relation.FIRST_PARTY, "acme.example"))),
        company_report(facts("Leaky B", seen(1, Relation.UNVERIFIED, "x.example"))),
        company_report(facts("leaky a", seen(1, Relation.UNVERIFIED, "x.example"))),
        company_report(facts("Very Leaky", seen(1, Relation.UNVERIFIED, "x.example"),
                             seen(2, Relation.SPOOFED, "acme.example"))),
        company_report(facts("Seller", seen(1, Relation.THIRD_PARTY, "broker.example"))),
    ]
    assert [r.name for r in worst_first(reports)] == [
        "Seller", "Very Leaky", "leaky a", "Leaky B", "Clean Co", "quiet co"]


# --- the JSON document -------------------------------------------------------------------


def test_report_document_validates_against_the_schema(leaked_acme: CompanyReport) -> None:
    reports = [
        company_report(facts("Quiet Co")),
        leaked_acme,
        company_report(facts("Seller", seen(1, Relation.THIRD_PARTY, "broker.example",
                                            authenticated_by=dkim("broker.example")))),
        company_report(facts("Other Seller", seen(2, Relation.THIRD_PARTY, "broker.example",
                                                  authenticated_by=spf("broker.example")))),
    ]
    document = report_document(reports, datetime(2026, 3, 1, 12, 30, tzinfo=UTC), probes=7)
    assert document["schema_version"] == SCHEMA_VERSION == 3
    assert document["generated_at"] == "2026-03-01T12:30:00Z"
    assert document["probes"] == 7
    assert [c["verdict"] for c in document["companies"]] == [
        "shared", "shared", "leaked", "quiet"]
    acme = document["companies"][2]
    assert acme["name"] == "Acme"
    assert acme["days_to_first_unexpected"] == 24
    assert [s["organisation"] for s in acme["unexpected_senders"]] == [
        "dealblaster.example", UNKNOWN_SENDER]
    marketer = acme["unexpected_senders"][0]
    assert marketer["first_seen"] == day(24.8).isoformat().replace("+00:00", "Z")
    assert marketer["count"] == 3
    # Expected senders are not listed among the unexpected ones.
    assert all(s["relation"] != "first_party" for s in acme["unexpected_senders"])
    assert document["brokers"] == [
        {"organisation": "broker.example", "companies": ["Other Seller", "Seller"]}]
    assert_valid_report(document)


def test_the_schema_check_rejects_a_broken_document(leaked_acme: CompanyReport) -> None:
    # The validator used above is not vacuous: each of these breaks the contract.
    good = report_document([leaked_acme], day(50), probes=0)
    assert_valid_report(good)
    broken_verdict = json.loads(json.dumps(good))
    broken_verdict["companies"][0]["verdict"] = "suspicious"
    broken_time = json.loads(json.dumps(good))
    broken_time["generated_at"] = "yesterday Z"
    missing = json.loads(json.dumps(good))
    del missing["companies"][0]["counts"]["pending"]
    for document in (broken_verdict, broken_time, missing):
        with pytest.raises(jsonschema.ValidationError):
            assert_valid_report(document)


def test_schema_relations_match_the_domain() -> None:
    schema = json.loads((SCHEMAS / "report.schema.json").read_text(encoding="utf-8"))
    assert set(schema["$defs"]["relation"]["enum"]) == {r.value for r in Relation}
    assert set(schema["$defs"]["company"]["properties"]["verdict"]["enum"]) == {
        v.value for v in Verdict}


# --- a capped report ------------------------------------------------------------


def test_a_capped_report_lists_every_accused_sender_and_the_cited_ones_first() -> None:
    """`canary report` lists a few senders per list; the verdict still weighs them all, the
    accused sender and the one the reason names are always listed, and the rest are
    counted."""
    spam = [seen(n, Relation.UNVERIFIED, f"spam{n}.example") for n in range(1, 8)]
    broker = [seen(20 + n, Relation.THIRD_PARTY, "broker.example", authenticated_by=DKIM_B)
              for n in range(3)]
    own = [seen(n / 10, Relation.FIRST_PARTY, f"mail{n}.acme.example") for n in range(1, 5)]
    whole = company_report(facts("Acme", *spam, *broker, *own))
    capped = company_report(facts("Acme", *spam, *broker, *own), listed=2)

    assert (capped.verdict, capped.confidence, capped.confidence_reason) == (
        whole.verdict, whole.confidence, whole.confidence_reason)
    assert whole.verdict is Verdict.SHARED and "broker.example" in whole.confidence_reason
    # The broker is listed beyond the cap, with its evidence; spam fills the cap in order.
    assert [s.organisation for s in capped.unexpected] == [
        "spam1.example", "spam2.example", "broker.example"]
    (listed_broker,) = [s for s in capped.unexpected if s.accusable]
    assert listed_broker == next(s for s in whole.unexpected if s.accusable)
    assert len(listed_broker.examples) == EXAMPLES_KEPT and listed_broker.authenticated_by
    assert [s.organisation for s in capped.senders if s.relation.expected] == [
        "mail1.acme.example", "mail2.acme.example"]
    assert capped.unlisted.to_dict() == {"unexpected": 5, "expected": 2, "unproven": 0}
    assert whole.unlisted.to_dict() == {"unexpected": 0, "expected": 0, "unproven": 0}

    document = report_document([capped], T0, probes=0)
    assert_valid_report(document)
    (company,) = document["companies"]
    assert company["unlisted_senders"] == {"unexpected": 5, "expected": 2, "unproven": 0}
    assert len(company["unexpected_senders"]) == 3


def test_a_capped_report_keeps_the_sender_a_leak_is_blamed_on() -> None:
    """Without an accused sender, forged and look-alike mail is listed before plain spam:
    the confidence reason names it."""
    spam = [seen(n, Relation.UNVERIFIED, f"spam{n}.example") for n in range(1, 6)]
    phish = seen(9, Relation.IMPERSONATION, "acme-security.example")
    capped = company_report(facts("Acme", *spam, phish), listed=1)
    assert capped.verdict is Verdict.LEAKED
    assert "acme-security.example" in capped.confidence_reason
    assert [s.organisation for s in capped.unexpected] == ["acme-security.example"]
    assert capped.unlisted.unexpected == 5


@pytest.mark.parametrize(
    ("sightings", "reason", "unlisted"),
    [
        # Bounces fill the cap; the spam beyond it still rules out "only bounces".
        ([*(seen(n, Relation.BACKSCATTER, f"mx{n}.example") for n in range(1, 4)),
          seen(9, Relation.UNVERIFIED, "spam.example")],
         "unauthenticated spam only: the address leaked, source unproven", 3),
        # Forged mail from two senders: the reason counts the unlisted one's too.
        ([seen(1, Relation.SPOOFED, "acme.example"), seen(2, Relation.SPOOFED, "acme.example"),
          seen(3, Relation.SPOOFED, "mail.acme.example")],
         "3 messages forging the company's own domain: someone knows this address belongs "
         "to its customer", 1),
        # The company's own mail and mail proving nothing, each from several senders.
        ([seen(1, Relation.FIRST_PARTY, "acme.example"), seen(2, Relation.PROCESSOR, "esp"),
          seen(3, Relation.PROCESSOR, "esp"), seen(4, Relation.UNPROVEN, "x.example"),
          seen(5, Relation.UNPROVEN, "y.example")],
         "only the company's own mail and its processors', and 2 messages that prove "
         "nothing either way", 2),
    ],
)
def test_a_capped_report_weighs_the_senders_it_leaves_out(sightings: list[Sighting],
                                                          reason: str, unlisted: int) -> None:
    """The verdict and confidence of a report listing one sender of each list are those of
    the whole report: they weigh the unlisted senders through the counts."""
    whole = company_report(facts("Acme", *sightings))
    capped = company_report(facts("Acme", *sightings), listed=1)
    assert whole.confidence_reason == capped.confidence_reason == reason
    assert (capped.verdict, capped.confidence) == (whole.verdict, whole.confidence)
    assert sum(capped.unlisted.to_dict().values()) == unlisted

"""Consent and frequency: what the person agreed to, and the mail that breaks it.

The rules (`canary.consent`) are tested with plain function calls on
generated mail histories. The commands that record consent (`issue
--marketing/--frequency`, `consent`, `optout`) run through typer's CliRunner
on a real home, and one end-to-end test stores DKIM-signed mail with chosen
receipt times, analyses it against a loopback DNS server and reads the
findings back from `canary report --json`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from commands import Canary, assert_one_sentence, assert_usage_error
from conftest import CANARY_DOMAIN
from factories import make_message
from signing import DkimKey, ed25519_key

from canary.consent import (
    OPTOUT_GRACE,
    Consent,
    Finding,
    FindingKind,
    Frequency,
    MarketingMail,
    consent_findings,
    is_marketing,
)
from data.database import Store
from data.home import Home
from data.mailstore import Delivery, issued_alias, store_deliveries
from data.registry import issue_alias
from smtp_listener.analysis import AnalysisSettings, analyse_all
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)




def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def mail(days: float, subject: str = "News") -> MarketingMail:
    moment = at(days)
    return MarketingMail(moment, f"<{moment.timestamp()}@acme.example>",
                         f"{int(moment.timestamp()):064x}", subject)


def agreed(frequency: Frequency, since: float = 0) -> Consent:
    return Consent(at(since), True, frequency)


def opted_out(since: float) -> Consent:
    return Consent(at(since), False, Frequency.NEVER, opted_out=True)


def finding(findings: Sequence[Finding], kind: FindingKind) -> Finding | None:
    matches = [f for f in findings if f.kind is kind]
    assert len(matches) <= 1, "one finding of each kind"
    return matches[0] if matches else None


# --- is_marketing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"list_unsubscribe": "<mailto:unsubscribe@acme.example>"}, "List-Unsubscribe"),
        ({"list_unsubscribe": "<https://acme.example/u?id=7>, <mailto:u@acme.example>"},
         "List-Unsubscribe"),
        ({"precedence": "bulk"}, "bulk"),
        ({"precedence": " Bulk "}, "bulk"),
        ({"precedence": "list"}, "list"),
        ({"esp": "SendGrid"}, "SendGrid"),
    ],
    ids=["list-unsubscribe-mailto", "list-unsubscribe-https", "precedence-bulk",
         "precedence-bulk-spaced", "precedence-list", "esp"],
)
def test_marketing_is_recognised_with_its_reason(headers: dict[str, str], reason: str) -> None:
    fields: dict[str, Any] = {"subject": "Spring sale: 20% off everything",
                              "list_unsubscribe": None, "precedence": None, "esp": None}
    fields.update(headers)
    marketing, why = is_marketing(**fields)
    assert marketing is True
    assert reason in why


def test_list_unsubscribe_makes_even_an_order_themed_newsletter_marketing() -> None:
    # Marketers dress newsletters up as receipts; the unsubscribe link gives them away.
    marketing, _ = is_marketing(subject="Your order: 3 picks we think you'll love",
                                list_unsubscribe="<mailto:u@acme.example>",
                                precedence=None, esp=None)
    assert marketing is True


@pytest.mark.parametrize(
    "subject",
    [
        "Your receipt from Acme",
        "Reset your password",
        "Your order #40213 has shipped",
        "Shipping confirmation for order 40213",
        "Your delivery is on its way",
        "Verify your email address",
        "Your security code is 481516",
        "Invoice INV-2291 for January",
        "Refund processed",
        "Booking confirmation: table for two",
    ],
)
@pytest.mark.parametrize("esp", [None, "SendGrid"], ids=["own-server", "via-esp"])
def test_transactional_mail_without_list_unsubscribe_is_not_marketing(
    subject: str, esp: str | None,
) -> None:
    marketing, why = is_marketing(subject=subject, list_unsubscribe=None, precedence=None,
                                  esp=esp)
    assert marketing is False, why


def test_plain_personal_mail_is_not_marketing() -> None:
    marketing, _ = is_marketing(subject="Your guitar is ready for collection",
                                list_unsubscribe=None, precedence=None, esp=None)
    assert marketing is False
    assert is_marketing(subject=None, list_unsubscribe=None, precedence=None,
                        esp=None)[0] is False


# --- after_optout ---------------------------------------------------------------------------


def test_mail_within_the_grace_period_after_an_opt_out_is_not_reported() -> None:
    history = [agreed(Frequency.WEEKLY), opted_out(20)]
    # Weekly mail that stops five days after the opt-out: the company had time to react.
    mails = [mail(d) for d in (0, 7, 14, 21, 25)]
    assert finding(consent_findings(history, mails), FindingKind.AFTER_OPTOUT) is None


def test_mail_after_the_grace_period_is_reported_with_those_messages_as_evidence() -> None:
    optout = 20
    history = [agreed(Frequency.WEEKLY), opted_out(optout)]
    before = [mail(d) for d in (0, 7, 14)]
    in_grace = [mail(optout + 1), mail(optout + 9.9),
                mail(optout + OPTOUT_GRACE / timedelta(days=1))]  # exactly at the end: still ok
    late = [mail(optout + 10 + 1 / 1440), mail(optout + 17), mail(optout + 24)]

    found = finding(consent_findings(history, [*late, *before, *in_grace]),
                    FindingKind.AFTER_OPTOUT)

    assert found is not None
    assert found.messages == tuple(late), "only the mail after the grace, oldest first"
    assert found.summary.startswith("3 marketing messages")
    assert f"{at(optout):%Y-%m-%d}" in found.summary
    assert "24 days after" in found.summary


def test_no_after_optout_without_an_opt_out() -> None:
    history = [agreed(Frequency.DAILY)]
    assert finding(consent_findings(history, [mail(d) for d in range(30)]),
                   FindingKind.AFTER_OPTOUT) is None


def test_mail_after_opting_back_in_is_not_after_optout() -> None:
    history = [agreed(Frequency.WEEKLY), opted_out(10), agreed(Frequency.WEEKLY, since=40)]
    mails = [mail(d) for d in (41, 48, 55)]
    assert consent_findings(history, mails) == ()


def test_mail_during_an_earlier_opt_out_is_still_reported() -> None:
    # Opted out on day 10, opted back in on day 40, out again on day 60. The mail on
    # days 25 and 27 came more than ten days into the first opt-out.
    history = [agreed(Frequency.WEEKLY), opted_out(10), agreed(Frequency.WEEKLY, since=40),
               opted_out(60)]
    mails = [mail(25), mail(27), mail(45)]
    found = finding(consent_findings(history, mails), FindingKind.AFTER_OPTOUT)
    assert found is not None, "mail 15 days into an opt-out went unreported"
    assert found.messages == (mail(25), mail(27))


# --- over_frequency ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "sent", "observed", "agreed_text"),
    [
        # Three a day for five days, then nothing.
        (Frequency.DAILY, [d + h / 24 for d in range(5) for h in (8, 12, 16)],
         "15 in 7 days", "daily (7 in 7 days)"),
        # Every day for a fortnight.
        (Frequency.WEEKLY, list(range(14)), "14 in 28 days", "weekly (4 in 28 days)"),
        # Weekly for eight weeks.
        (Frequency.MONTHLY, [7 * w for w in range(8)], "8 in 90 days", "monthly (3 in 90 days)"),
    ],
    ids=["daily", "weekly", "monthly"],
)
def test_more_marketing_than_agreed_is_reported_with_observed_and_agreed(
    frequency: Frequency, sent: list[float], observed: str, agreed_text: str,
) -> None:
    mails = [mail(d) for d in sent]
    found = finding(consent_findings([agreed(frequency)], mails), FindingKind.OVER_FREQUENCY)
    assert found is not None
    assert (found.observed, found.agreed) == (observed, agreed_text)
    assert found.messages == tuple(mails)
    assert found.summary == f"{observed.replace(' in ', ' marketing messages in ')}; agreed: " \
                            f"{agreed_text}"


def test_any_marketing_when_none_was_agreed_is_reported() -> None:
    history = [Consent(T0, False, None)]
    mails = [mail(3), mail(5), mail(12)]
    found = finding(consent_findings(history, mails), FindingKind.OVER_FREQUENCY)
    assert found is not None
    assert (found.observed, found.agreed) == ("3 in 30 days", "no marketing")
    assert found.messages == tuple(mails)


def test_frequency_never_is_reported_like_no_marketing() -> None:
    found = finding(consent_findings([agreed(Frequency.NEVER)], [mail(1)]),
                    FindingKind.OVER_FREQUENCY)
    assert found is not None
    assert (found.observed, found.agreed) == ("1 in 30 days", "no marketing")


def test_nothing_is_reported_when_nothing_was_agreed_or_refused() -> None:
    history = [Consent(T0, None, None)]
    assert consent_findings(history, [mail(d / 4) for d in range(100)]) == ()
    assert consent_findings([], [mail(d / 4) for d in range(100)]) == ()


def test_the_worst_window_is_reported() -> None:
    # Weekly at first, then a burst of six in three days in the third month.
    sent = [0, 7, 14, 21, 28, 70, 71, 71.5, 72, 72.5, 73]
    found = finding(consent_findings([agreed(Frequency.WEEKLY)], [mail(d) for d in sent]),
                    FindingKind.OVER_FREQUENCY)
    assert found is not None
    assert found.observed == "6 in 28 days"
    assert [m.received_at for m in found.messages] == [at(d) for d in sent[5:]]


def jittered(days: float, index: int) -> float:
    """`days`, moved by up to an hour either way, as a mailing system's queue does."""
    return days + ((index * 37) % 121 - 60) / 1440


def first_of_each_month(count: int) -> list[float]:
    moments = [datetime(2026 + (m // 12), m % 12 + 1, 1, 9, 0, tzinfo=UTC) for m in range(count)]
    return [(moment - T0) / timedelta(days=1) for moment in moments]


@pytest.mark.parametrize(
    ("frequency", "sent"),
    [
        (Frequency.DAILY, [d for d in range(60)]),
        (Frequency.DAILY, [jittered(d, d) for d in range(60)]),
        (Frequency.WEEKLY, [7 * w for w in range(26)]),
        (Frequency.WEEKLY, [jittered(7 * w, w) for w in range(26)]),
        (Frequency.MONTHLY, first_of_each_month(14)),
        (Frequency.MONTHLY, [jittered(d, i) for i, d in enumerate(first_of_each_month(14))]),
    ],
    ids=["daily", "daily-jitter", "weekly", "weekly-jitter", "monthly-on-the-1st",
         "monthly-on-the-1st-jitter"],
)
def test_mail_that_keeps_the_agreement_is_not_reported(
    frequency: Frequency, sent: list[float],
) -> None:
    # Half a year of a newsletter sent exactly as agreed, give or take an hour in the
    # sender's queue; monthly means on the 1st of each calendar month.
    findings = consent_findings([Consent(at(-1), True, frequency)], [mail(d) for d in sent])
    assert findings == (), [f"{f.kind}: {f.summary}" for f in findings]


def test_a_frequency_change_applies_from_its_date() -> None:
    # Weekly until day 30, then the person agreed to daily mail, and got it.
    history = [agreed(Frequency.WEEKLY), agreed(Frequency.DAILY, since=30)]
    mails = [mail(d) for d in (0, 7, 14, 21, 28)] + [mail(d + 0.5) for d in range(30, 60)]
    findings = consent_findings(history, mails)
    assert findings == (), [f.summary for f in findings]


def test_a_stricter_frequency_applies_from_its_date_and_cites_only_later_mail() -> None:
    # Daily agreed at first; from day 30 only weekly, but the daily mail went on.
    history = [agreed(Frequency.DAILY), agreed(Frequency.WEEKLY, since=30)]
    mails = [mail(d + 0.5) for d in range(0, 60)]
    found = finding(consent_findings(history, mails), FindingKind.OVER_FREQUENCY)
    assert found is not None
    assert found.agreed == "weekly (4 in 28 days)"
    assert found.observed == f"{len(found.messages)} in 28 days"
    assert len(found.messages) > 20, "daily mail is far more than four in 28 days"
    assert all(m.received_at >= at(30) for m in found.messages), "judged by the old agreement"


def test_mail_after_an_opt_out_is_judged_only_as_after_optout() -> None:
    # Weekly mail as agreed until the opt-out on day 14; the company then mailed daily.
    # That is after_optout's business, with its grace period, not a frequency breach.
    history = [agreed(Frequency.WEEKLY), opted_out(14)]
    mails = [mail(d) for d in (0, 7, 13)] + [mail(d + 0.5) for d in range(14, 28)]
    findings = consent_findings(history, mails)
    assert [f.kind for f in findings] == [FindingKind.AFTER_OPTOUT], \
        [f.summary for f in findings]
    assert findings[0].messages == tuple(m for m in mails if m.received_at > at(24))


# --- the commands -------------------------------------------------------------------------------


@pytest.fixture
def canary(home: Home) -> Canary:
    return Canary(home.path)


def consent_of(canary: Canary, name: str) -> dict[str, Any]:
    document = canary.json("report", "--company", name)
    (company,) = document["companies"]
    consent = company["consent"]
    assert isinstance(consent, dict), f"no consent recorded for {name}"
    return consent


def test_issue_records_what_was_agreed(canary: Canary) -> None:
    before = datetime.now(UTC)
    result = canary("issue", "Acme", "--marketing", "yes", "--frequency", "weekly")
    assert result.exit_code == 0, result.output
    consent = consent_of(canary, "Acme")
    assert (consent["marketing"], consent["frequency"], consent["opted_out"]) == (
        True, "weekly", False)
    since = datetime.fromisoformat(consent["since"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= since <= datetime.now(UTC)


def test_issue_without_consent_options_records_no_consent(canary: Canary) -> None:
    assert canary("issue", "Acme").exit_code == 0
    (company,) = canary.json("report")["companies"]
    assert company["consent"] is None
    assert company["findings"] == []


def test_consent_changes_the_frequency_and_keeps_the_rest(canary: Canary) -> None:
    assert canary("issue", "Acme", "--marketing", "yes", "--frequency", "weekly").exit_code == 0
    result = canary("consent", "acme", "--frequency", "monthly")
    assert result.exit_code == 0, result.output
    assert "Acme" in result.stdout
    consent = consent_of(canary, "Acme")
    assert (consent["marketing"], consent["frequency"], consent["opted_out"]) == (
        True, "monthly", False)

    assert canary("consent", "Acme", "--marketing", "no").exit_code == 0
    consent = consent_of(canary, "Acme")
    assert (consent["marketing"], consent["frequency"]) == (False, "monthly")


def test_consent_with_nothing_to_record_is_refused(canary: Canary) -> None:
    assert canary("issue", "Acme", "--marketing", "yes", "--frequency", "weekly").exit_code == 0
    assert_one_sentence(canary("consent", "Acme"), "--frequency")
    assert consent_of(canary, "Acme")["frequency"] == "weekly"


def test_consent_for_an_unknown_company_is_refused(canary: Canary) -> None:
    assert_one_sentence(canary("consent", "Nobody", "--frequency", "daily"), "Nobody")


def issue_on(home: Home, store: Store, moment: datetime) -> str:
    """Issue Acme's alias as `canary issue Acme --marketing yes --frequency weekly` would have
    on `moment`; return the address."""
    with store.writing() as session:
        return issue_alias(session, secret=home.secret(), name="Acme",
                           alias_domain=CANARY_DOMAIN, domains=["acme.example"], note=None,
                           new=False, now=moment, marketing=True,
                           frequency=Frequency.WEEKLY).address


def test_optout_at_a_date_is_the_consent_in_force(home: Home, store: Store) -> None:
    issue_on(home, store, datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    canary = Canary(home.path)
    result = canary("optout", "Acme", "--at", "2026-01-15")
    assert result.exit_code == 0, result.output
    assert "2026-01-15" in result.stdout
    assert consent_of(canary, "Acme") == {"since": "2026-01-15T00:00:00Z", "marketing": False,
                                          "frequency": "never", "opted_out": True}


def test_optout_without_a_date_is_now(canary: Canary) -> None:
    assert canary("issue", "Acme", "--marketing", "yes", "--frequency", "weekly").exit_code == 0
    before = datetime.now(UTC)
    assert canary("optout", "Acme").exit_code == 0
    consent = consent_of(canary, "Acme")
    assert consent["opted_out"] is True
    since = datetime.fromisoformat(consent["since"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= since <= datetime.now(UTC)


def test_optout_of_an_unknown_company_is_refused(canary: Canary) -> None:
    assert_one_sentence(canary("optout", "Nobody", "--at", "2026-01-15"), "Nobody")


@pytest.mark.parametrize("bad", ["2026-02-30", "15/01/2026", "yesterday", ""])
def test_optout_with_a_bad_date_is_refused_and_records_nothing(canary: Canary,
                                                                bad: str) -> None:
    assert canary("issue", "Acme", "--marketing", "yes", "--frequency", "weekly").exit_code == 0
    assert_usage_error(canary("optout", "Acme", "--at", bad), "--at", "YYYY-MM-DD")
    assert consent_of(canary, "Acme")["opted_out"] is False


def test_opting_back_in_after_an_opt_out_does_not_mean_never(canary: Canary) -> None:
    assert canary("issue", "Acme", "--marketing", "yes", "--frequency", "weekly").exit_code == 0
    assert canary("optout", "Acme").exit_code == 0
    assert canary("consent", "Acme", "--marketing", "yes").exit_code == 0
    consent = consent_of(canary, "Acme")
    assert (consent["marketing"], consent["opted_out"]) == (True, False)
    # "Yes to marketing, frequency never" would report every newsletter as a breach.
    assert consent["frequency"] != "never", consent


# --- end to end: stored, analysed, reported ----------------------------------------------------


@pytest.fixture
def acme_key(zones: Zones) -> DkimKey:
    key = ed25519_key("acme.example")
    key.publish(zones)
    return key


@pytest.fixture
def marketer_key(zones: Zones) -> DkimKey:
    key = ed25519_key("dealblaster.example")
    key.publish(zones)
    return key


def store_mail(store: Store, address: str, raw: bytes, received_at: datetime) -> str:
    """Store one message for the alias as the listener's writer does; return its SHA-256."""
    with store.writing() as session:
        issued = issued_alias(session, address)
        assert issued is not None
        store_deliveries(session, [Delivery(
            raw=raw, recipients=((issued.alias_id, address),), mail_from="bounce@mailer.example",
            peer_ip="192.0.2.25", helo="mx.mailer.example", tls=True, received_at=received_at)])
    return hashlib.sha256(raw).hexdigest()


def test_report_carries_after_optout_and_over_frequency_from_analysed_mail(
    home: Home, store: Store, acme_key: DkimKey, marketer_key: DkimKey, resolver: Resolver,
    dns_server: str,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
    address = issue_on(home, store, start)
    canary = Canary(home.path)
    optout_day = 30
    assert canary("optout", "Acme", "--at", f"{start + timedelta(days=optout_day):%Y-%m-%d}"
                  ).exit_code == 0
    optout = datetime.combine((start + timedelta(days=optout_day)).date(),
                              datetime.min.time(), UTC)

    def own(subject: str, *, unsubscribe: bool = True) -> bytes:
        headers = {"List-Unsubscribe": "<mailto:unsubscribe@acme.example>"} if unsubscribe \
            else {}
        return acme_key.sign(make_message(sender='"Acme" <news@acme.example>', to=address,
                                          subject=subject, headers=headers))

    def marketer(subject: str) -> bytes:
        return marketer_key.sign(make_message(
            sender='"Deal Blaster" <offers@dealblaster.example>', to=address, subject=subject,
            headers={"List-Unsubscribe": "<mailto:u@dealblaster.example>",
                     "Precedence": "bulk"}))

    # Six newsletters in six days, where weekly was agreed.
    burst = [store_mail(store, address, own(f"Deals, day {d}"), start + timedelta(days=d))
             for d in range(1, 7)]
    # Two days into the opt-out (within the grace), then twice after it.
    store_mail(store, address, own("Last chance"), optout + timedelta(days=2))
    late = [store_mail(store, address, own(f"We miss you {d}"), optout + timedelta(days=d))
            for d in (12, 19)]
    # A receipt after the opt-out is not marketing.
    store_mail(store, address, own("Your order #4021 has shipped", unsubscribe=False),
               optout + timedelta(days=20))
    # A third party's marketing, daily after the opt-out: evidence of sharing, but not
    # Acme's own marketing, so neither finding counts it.
    for d in range(11, 25):
        store_mail(store, address, marketer(f"Exclusive offer {d}"), optout + timedelta(days=d))

    analysed = analyse_all(store, AnalysisSettings(resolver), lambda: datetime.now(UTC))
    assert analysed == 6 + 1 + 2 + 1 + 14

    document = canary.json("report")
    (company,) = document["companies"]
    assert company["verdict"] == "shared"
    assert company["counts"]["first_party"] == 10
    assert company["counts"]["third_party"] == 14
    assert company["counts"]["marketing"] == 9, "own newsletters only: no receipt, no third party"
    findings = {f["kind"]: f for f in company["findings"]}
    assert set(findings) == {"after_optout", "over_frequency"}

    after = findings["after_optout"]
    assert [m["sha256"] for m in after["messages"]] == late
    assert after["summary"].startswith("2 marketing messages")

    over = findings["over_frequency"]
    assert [m["sha256"] for m in over["messages"]] == burst
    assert (over["observed"], over["agreed"]) == ("6 in 28 days", "weekly (4 in 28 days)")

    # The table says it too.
    table = canary("report")
    assert table.exit_code == 0, table.output
    assert "after_optout" in table.stdout and "over_frequency" in table.stdout

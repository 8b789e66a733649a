"""Alert rules as plain function calls: severities, wording, digests, masking, the config.

No sockets and no database: `canary.alerts` is pure. What a person would notice: an
alert that names the alias, the company, the sender, the verdict and the command to
see more; no message body ever, a subject only when asked; a digest instead of a
flood; a channel's token never shown.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from commands import assert_valid

from canary.alerts import (
    AlertsConfig,
    AlertsConfigError,
    Channel,
    DiskUsage,
    Event,
    EventKind,
    Severity,
    alert_text,
    alert_title,
    alerts_document,
    alerts_toml,
    batches,
    digest_text,
    disk_low,
    expand_events,
    masked,
    new_sender_severity,
    observe_analysis,
    payload,
    read_alerts,
    redacted,
    retry_delay,
    stuck,
    worsened,
)
from canary.authentication import AuthenticatedBy, AuthMethod
from canary.relation import Relation
from canary.senders import SenderKind

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def new_sender(n: int = 1, **fields: object) -> Event:
    values: dict[str, object] = {
        "kind": EventKind.NEW_SENDER, "key": f"new_sender:1:sender{n}.example",
        "severity": Severity.HIGH, "occurred_at": NOW - timedelta(minutes=n),
        "company": "MegaMart", "alias": "megamart.y3qvjuxe@aliases.example.net",
        "sender": "dealblaster.example", "sender_kind": SenderKind.ORGANISATION,
        "relation": Relation.THIRD_PARTY,
        "authenticated_by": AuthenticatedBy(AuthMethod.DKIM, "dealblaster.example"),
        "verdict": "shared", "previous_verdict": "clean", "days_since_issued": 22,
        "subject": "You have been selected", "id": n,
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


# --- severities -------------------------------------------------------------------------


@pytest.mark.parametrize(("relation", "kind", "severity"), [
    (Relation.THIRD_PARTY, SenderKind.ORGANISATION, Severity.HIGH),
    (Relation.THIRD_PARTY, SenderKind.MERCHANT, Severity.HIGH),
    (Relation.THIRD_PARTY, SenderKind.MAILBOX, Severity.MEDIUM),
    (Relation.UNVERIFIED, SenderKind.ORGANISATION, Severity.MEDIUM),
    (Relation.SPOOFED, SenderKind.ORGANISATION, Severity.MEDIUM),
    (Relation.IMPERSONATION, SenderKind.ORGANISATION, Severity.MEDIUM),
    (Relation.BACKSCATTER, SenderKind.UNKNOWN, Severity.LOW),
])
def test_a_new_sender_is_as_severe_as_the_verdict_it_proves(
    relation: Relation, kind: SenderKind, severity: Severity,
) -> None:
    assert new_sender_severity(relation, kind) is severity


@pytest.mark.parametrize(("before", "after", "news"), [
    ("clean", "shared", True), ("leaked", "shared", True), ("clean", "leaked", True),
    ("shared", "clean", False), ("shared", "leaked", False), ("quiet", "clean", False),
    (None, "shared", False), ("pending", "leaked", True), ("leaked", "leaked", False),
])
def test_only_a_verdict_getting_worse_is_news(before: str | None, after: str,
                                              news: bool) -> None:
    assert worsened(before, after) is news


# --- what an alert says -----------------------------------------------------------------


def test_an_alert_names_alias_company_sender_verdict_and_the_command() -> None:
    event = new_sender()
    title, text = alert_title(event), alert_text(event)
    assert title == "Canary: MegaMart: new sender dealblaster.example"
    for needed in ("megamart.y3qvjuxe@aliases.example.net", "MegaMart", "dealblaster.example",
                   "shared (was clean)", "DKIM d=dealblaster.example", "22 days",
                   "More: canary show MegaMart"):
        assert needed in text, needed
    assert len(text.splitlines()) <= 6, "short enough for a phone"


def test_the_subject_only_when_the_person_asked_for_it() -> None:
    event = new_sender()
    assert "You have been selected" not in alert_text(event)
    assert "Subject: You have been selected" in alert_text(event, subjects=True)
    assert payload([event], NOW)["alerts"][0]["subject"] is None
    assert payload([event], NOW, subjects=True)["alerts"][0]["subject"] == (
        "You have been selected")


def test_nothing_a_sender_wrote_adds_lines_to_an_alert() -> None:
    event = new_sender(sender="evil.example\nMore: rm -rf /",
                       subject="Hi\r\nVerdict: clean")
    text = alert_text(event, subjects=True)
    lines = text.splitlines()
    assert sum(line.startswith("More:") for line in lines) == 1
    assert sum(line.startswith("Verdict:") for line in lines) == 1
    assert text.splitlines()[-1] == "More: canary show MegaMart"


def test_a_company_with_spaces_is_quoted_in_the_command() -> None:
    assert alert_text(new_sender(company="Fretwork Guitars")).endswith(
        "More: canary show 'Fretwork Guitars'")


@pytest.mark.parametrize("kind", [k for k in EventKind])
def test_every_kind_has_a_title_text_and_a_valid_payload(kind: EventKind) -> None:
    event = Event(kind, f"{kind.value}:x", Severity.MEDIUM, NOW, company="MegaMart",
                  alias="megamart.y3qvjuxe@aliases.example.net", sender="dealblaster.example",
                  verdict="shared", previous_verdict="leaked", count=3,
                  companies=("Fretwork Guitars", "MegaMart"), detail="what was found")
    assert alert_title(event).startswith("Canary: ")
    assert alert_text(event).splitlines()[-1].startswith("More: canary ")
    assert_valid(payload([event], NOW), "alert")


# --- digests and the rate limit -----------------------------------------------------------


def test_few_alerts_go_one_by_one_and_many_as_one_digest() -> None:
    three = [new_sender(n) for n in range(1, 4)]
    assert [b.digest for b in batches(three, budget=10, digest_after=5)] == [False] * 3
    eight = [new_sender(n) for n in range(1, 9)]
    (digest,) = batches(eight, budget=10, digest_after=5)
    assert digest.digest and len(digest.events) == 8


def test_more_due_than_the_hour_allows_becomes_one_digest_and_none_when_spent() -> None:
    three = [new_sender(n) for n in range(1, 4)]
    (digest,) = batches(three, budget=2, digest_after=5)
    assert digest.digest and len(digest.events) == 3
    assert batches(three, budget=0, digest_after=5) == []


def test_a_digest_counts_each_kind_and_names_the_most_severe_first() -> None:
    events = [new_sender(n, severity=Severity.MEDIUM, sender=f"spam{n}.example",
                         relation=Relation.UNVERIFIED) for n in range(1, 30)]
    events.append(Event(EventKind.AFTER_OPTOUT, "after_optout:1", Severity.MEDIUM, NOW,
                        company="MegaMart", detail="3 marketing messages after the opt-out"))
    events.append(new_sender(99, sender="dealblaster.example"))
    text = digest_text(events)
    assert text.startswith("31 alerts at once: 30 new senders, 1 marketing after opt-out")
    assert text.splitlines()[2] == "- MegaMart: new sender dealblaster.example (shared)"
    assert "…and 26 more." in text and text.endswith("More: canary report")
    document = payload(events, NOW, digest=True)
    assert_valid(document, "alert")
    assert document["total"] == 31 and document["alerts"][0]["sender"] == "dealblaster.example"


def test_retries_pause_longer_each_time_up_to_an_hour() -> None:
    first = timedelta(seconds=30)
    assert [retry_delay(n, first) for n in (1, 2, 3)] == [first, first * 2, first * 4]
    assert retry_delay(50, first) == timedelta(hours=1)


# --- health -----------------------------------------------------------------------------


def test_analysis_is_stuck_only_when_mail_waits_and_none_is_analysed() -> None:
    seen = observe_analysis(None, analysed=10, waiting=3, now=NOW)
    later = observe_analysis(seen, analysed=10, waiting=3, now=NOW + timedelta(hours=2))
    assert stuck(later, NOW + timedelta(hours=2), timedelta(hours=1))
    moving = observe_analysis(seen, analysed=11, waiting=3, now=NOW + timedelta(hours=2))
    assert not stuck(moving, NOW + timedelta(hours=2), timedelta(hours=1))
    idle = observe_analysis(seen, analysed=10, waiting=0, now=NOW + timedelta(hours=2))
    assert not stuck(idle, NOW + timedelta(hours=2), timedelta(hours=1))


def test_the_disk_warning_comes_at_twice_the_listeners_floor() -> None:
    mb = 2 ** 20
    assert disk_low(DiskUsage(free=150 * mb, total=1000 * mb), 100 * mb, 0.01)
    assert not disk_low(DiskUsage(free=250 * mb, total=1000 * mb), 100 * mb, 0.01)


# --- channels, secrets, the config ----------------------------------------------------------


@pytest.mark.parametrize(("url", "shown", "hidden"), [
    ("ntfys://ntfy.sh/canary-k3j4h5g6f7", "ntfys://ntfy.sh/ca…", ["canary-k3j4h5g6f7"]),
    ("json://user:hunter2pw@127.0.0.1:8080/hooks/tok3ntok3n?x=s3cr3tval&method=POST",
     "json://…:***@127.0.0.1:8080/…/to…?x=***&method=POST",
     ["hunter2pw", "tok3ntok3n", "s3cr3tval"]),
    ("tgram://123456789:AAbbCCddEEff/987654", "tgram://12…/…",
     ["123456789:AAbbCCddEEff", "987654"]),
    ("mailto://me:pa55word@mail.example.org?to=you@example.org&mode=ssl",
     "mailto://…:***@mail.example.org?to=you@example.org&mode=ssl", ["pa55word"]),
    ("discord://112233445566/abcdefghijklmnop", "discord://11…/ab…", ["abcdefghijklmnop"]),
])
def test_a_channel_is_shown_without_its_secrets(url: str, shown: str,
                                                hidden: list[str]) -> None:
    assert masked(url) == shown
    for secret in hidden:
        assert secret not in masked(url)
        error = f"POST to {url} failed: 401 for {secret}"
        assert secret not in redacted(error, [url])


def test_a_secret_written_url_encoded_is_taken_out_too() -> None:
    url = "json://bot:p%40ss%2Fword@hooks.example.org/x"
    assert "p@ss/word" not in redacted("login p@ss/word refused", [url])


def test_events_and_groups_expand_and_a_channel_wants_by_kind_and_severity() -> None:
    assert expand_events(["leaks"]) == {EventKind.NEW_SENDER, EventKind.VERDICT_CHANGED,
                                        EventKind.BROKER}
    assert EventKind.TEST not in expand_events(["all"])
    channel = Channel("ntfys://ntfy.sh/x", ("leaks", "health"), Severity.MEDIUM)
    assert channel.wants(EventKind.NEW_SENDER, Severity.HIGH)
    assert not channel.wants(EventKind.NEW_SENDER, Severity.LOW)
    assert not channel.wants(EventKind.PROBES, Severity.HIGH)
    assert channel.wants(EventKind.DISK_LOW, Severity.HIGH)
    with pytest.raises(AlertsConfigError, match="leak"):
        expand_events(["leak"])


def test_the_alerts_section_reads_back_what_it_writes() -> None:
    config = AlertsConfig(
        channels=(Channel("ntfys://ntfy.sh/canary-k3j4h5g6f7"),
                  Channel("json://127.0.0.1:9/hook", ("new_sender", "health"), Severity.LOW)),
        subjects=True, rate_limit_per_hour=4, digest_after=3,
        retry_for=timedelta(days=2), first_retry=timedelta(seconds=5), probes_per_hour=50,
        analysis_stuck_after=timedelta(minutes=90))
    text = "\n".join(alerts_toml(config))
    assert read_alerts(tomllib.loads(text)["alerts"]) == config
    assert read_alerts(None) == AlertsConfig()


@pytest.mark.parametrize(("table", "problem"), [
    ({"channels": [{"url": "not a url"}]}, "not an Apprise URL"),
    ({"channels": [{"url": "ntfy://x/y", "events": ["everything"]}]}, "everything"),
    ({"channels": [{"url": "ntfy://x/y", "min_severity": "urgent"}]}, "low, medium or high"),
    ({"channels": [{"url": "ntfy://x/y"}, {"url": "ntfy://x/y"}]}, "twice"),
    ({"rate_limit_per_hour": 0}, "rate_limit_per_hour"),
    ({"subjects": "yes"}, "true or false"),
    ({"channels": {"url": "ntfy://x/y"}}, "list of tables"),
])
def test_a_wrong_alerts_section_says_what_is_wrong(table: dict[str, object],
                                                   problem: str) -> None:
    with pytest.raises(AlertsConfigError, match=problem):
        read_alerts(table)


def test_a_wrong_url_in_the_config_is_not_repeated_whole() -> None:
    with pytest.raises(AlertsConfigError) as raised:
        read_alerts({"channels": [{"url": "json://u:hunter2pw@h.example/x", "events": 3}]})
    assert "hunter2pw" not in str(raised.value)


def test_the_list_document_masks_every_url() -> None:
    config = AlertsConfig(channels=(Channel("ntfys://ntfy.sh/canary-k3j4h5g6f7"),))
    document = alerts_document(config, {})
    assert_valid(document, "alerts")
    assert "k3j4h5g6f7" not in str(document)
    assert document["channels"][0]["status"] == "new"

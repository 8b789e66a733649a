"""Who really sent it: end to end over SMTP, with real DKIM keys and a real DNS server.

Each test issues one alias, publishes SPF, DKIM and DMARC records for
fictional companies, an ESP (SendGrid, as `canary/esps.json` knows it) and
marketers on a loopback authoritative DNS server, and sends mail signed with
RSA-2048 keys made in the test through the real listener. The sending relay
passes the original client address with Postfix's XFORWARD, as it would in
front of Canary. The assertions are what the user sees: the stored relation
and reason, and the verdict in `canary report --json`.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import RunningListener, issue, start_listener
from factories import make_message
from mailflow import rows, wait_for
from signing import DkimKey, crlf, ed25519_key, rsa_key
from typer.testing import CliRunner

from cli.main import app
from data.database import Store
from data.home import Home
from data.models import EspCustomer, Message
from smtp_listener.analysis import AnalysisSettings, analyse_pending
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones

ACME_IP, ACME_HELO = "198.51.100.10", "mail.acme.example"
SENDGRID_IP, SENDGRID_HELO = "198.51.100.20", "o1.ptr4221.sendgrid.net"
DEALS_IP, DEALS_HELO = "203.0.113.25", "mta1.dealblaster.example"
SPAM_IP, SPAM_HELO = "192.0.2.99", "dsl-192-0-2-99.isp.example"
FORGER_IP, FORGER_HELO = "203.0.113.66", "vps66.hosting.example"

SENDGRID_BOUNCE = "bounces+4221337-a1b2-user=canary.example.org@sendgrid.net"
SENDGRID_USER = "4221337"

runner = CliRunner()


@pytest.fixture(scope="module")
def keys() -> dict[str, DkimKey]:
    """RSA-2048 keys made once for the module: the company's, SendGrid's and a marketer's."""
    return {
        "acme": rsa_key("acme.example", "s1"),
        "sendgrid": rsa_key("sendgrid.net", "s1"),
        "dealblaster": rsa_key("dealblaster.example", "k2024"),
    }


@pytest.fixture
def world(zones: Zones, keys: dict[str, DkimKey]) -> Zones:
    """The DNS of everyone who writes to the aliases."""
    zones.add_txt("acme.example", f"v=spf1 ip4:{ACME_IP} -all")
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject; rua=mailto:dmarc@acme.example")
    keys["acme"].publish(zones)
    zones.add("mail.acme.example", "A", ACME_IP)
    zones.add_txt("sendgrid.net", f"v=spf1 ip4:{SENDGRID_IP} ~all")
    keys["sendgrid"].publish(zones)
    zones.add_txt("dealblaster.example", f"v=spf1 ip4:{DEALS_IP} -all")
    zones.add_txt("_dmarc.dealblaster.example", "v=DMARC1; p=none")
    keys["dealblaster"].publish(zones)
    zones.add_txt("cheap-pills.example", "v=spf1 ~all")
    return zones


@pytest.fixture
def running(world: Zones, home: Home, store: Store, resolver: Resolver
            ) -> Iterator[RunningListener]:
    started = start_listener(home, store, resolver)
    yield started
    started.stop()


@pytest.fixture
def acme(home: Home, store: Store) -> str:
    return issue(home, store, "Acme", "acme.example").address


def send(
    listener: RunningListener, rcpt: str, raw: bytes, *, mail_from: str, client: str, helo: str,
) -> None:
    """Deliver as the user's relay does: XFORWARD the original client, then the transaction."""
    with smtplib.SMTP(listener.host, listener.port, local_hostname="relay.user.example",
                      timeout=10) as smtp:
        smtp.ehlo()
        code, text = smtp.docmd("XFORWARD", f"ADDR={client} HELO={helo}")
        assert code == 250, text
        refused = smtp.sendmail(mail_from, [rcpt], crlf(raw))
        assert refused == {}


def settled(store: Store, count: int = 1) -> list[dict[str, Any]]:
    """The message rows once analysis has looked at all `count` of them (settled or not)."""
    messages = sorted(rows(store, Message), key=lambda m: m["id"])
    return messages if len(messages) == count and all(m["attempts"] for m in messages) else []


def one_message(store: Store) -> dict[str, Any]:
    (message,) = wait_for(lambda: settled(store), "the message to be analysed")
    return message


def report(home: Home, dns_server: str) -> dict[str, Any]:
    """`canary report --json` as the user runs it, against the test's DNS."""
    result = runner.invoke(app, ["--home", str(home.path), "report", "--json"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def company(document: dict[str, Any], name: str = "Acme") -> dict[str, Any]:
    (found,) = [c for c in document["companies"] if c["name"] == name]
    return found


def acme_newsletter(**headers: str) -> bytes:
    return make_message(sender='"Acme" <news@acme.example>', subject="Spring sale",
                        headers=headers)


# --- the company, its processor, a third party, spam ------------------------------------------


def test_the_companys_own_signed_mail_is_first_party(
    running: RunningListener, acme: str, store: Store, keys: dict[str, DkimKey], home: Home,
    dns_server: str,
) -> None:
    raw = keys["acme"].sign(acme_newsletter())
    send(running, acme, raw, mail_from="bounce@acme.example", client=ACME_IP, helo=ACME_HELO)

    message = one_message(store)
    assert message["peer_ip"] == ACME_IP, "the XFORWARD address is the client, not the relay"
    assert message["helo"] == ACME_HELO
    assert message["forwarded_by"] == "127.0.0.1"
    assert message["relation"] == "first_party"
    assert message["sender_org"] == "acme.example"
    assert (message["auth_method"], message["auth_domain"]) == ("dkim", "acme.example")
    auth = json.loads(message["authentication"])
    assert auth["spf"]["result"] == "pass"
    assert [(d["domain"], d["result"]) for d in auth["dkim"]] == [("acme.example", "pass")]
    assert auth["dmarc"] == {"result": "pass", "policy": "reject", "pct": 100,
                             "record_domain": "acme.example",
                             "dkim_aligned": "acme.example", "spf_aligned": "acme.example"}

    acme_report = company(report(home, dns_server))
    assert acme_report["verdict"] == "clean"
    assert acme_report["unexpected_senders"] == []
    assert [s["organisation"] for s in acme_report["expected_senders"]] == ["acme.example"]


def test_an_ed25519_signature_of_the_company_is_first_party_too(
    zones: Zones, home: Home, store: Store, acme: str, resolver: Resolver
) -> None:
    """RFC 8463 keys work end to end: no SPF is published, DKIM alone aligns."""
    key = ed25519_key("acme.example", "ed1")
    key.publish(zones)
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject")
    started = start_listener(home, store, resolver)
    try:
        send(started, acme, key.sign(acme_newsletter()), mail_from="bounce@acme.example",
             client=ACME_IP, helo=ACME_HELO)
        message = one_message(store)
    finally:
        started.stop()
    assert (message["relation"], message["auth_method"], message["auth_domain"]) == (
        "first_party", "dkim", "acme.example")
    assert json.loads(message["authentication"])["dkim"][0]["algorithm"] == "ed25519-sha256"


def test_the_companys_newsletter_through_its_esp_is_processor(
    running: RunningListener, acme: str, store: Store, keys: dict[str, DkimKey], home: Home,
    dns_server: str,
) -> None:
    # SendGrid with Acme's domain authenticated signs as acme.example (a key Acme
    # delegated to it) and as itself; Acme's DMARC p=reject passes.
    raw = keys["sendgrid"].sign(keys["acme"].sign(acme_newsletter(**{
        "Feedback-ID": f"{SENDGRID_USER}:campaign-88:bulk:SG",
        "X-SG-EID": "u001.Zx8ydPw8pT5R9xn3Qo0lWg==",
        "List-Unsubscribe": "<https://u4221337.ct.sendgrid.net/unsubscribe>",
    })))
    send(running, acme, raw, mail_from=SENDGRID_BOUNCE, client=SENDGRID_IP, helo=SENDGRID_HELO)

    message = one_message(store)
    assert message["relation"] == "processor", message["reason"]
    assert message["sender_org"] == "acme.example"
    assert message["sender_via"] == "Twilio SendGrid"
    assert (message["auth_method"], message["auth_domain"]) == ("dkim", "acme.example")
    assert (message["esp"], message["esp_customer"]) == ("Twilio SendGrid", SENDGRID_USER)
    assert "Twilio SendGrid" in message["reason"]
    auth = json.loads(message["authentication"])
    assert (auth["spf"]["result"], auth["spf"]["domain"]) == ("pass", "sendgrid.net")
    assert auth["dmarc"]["result"] == "pass"
    # Mail authenticated as Acme confirms SendGrid's customer id as Acme's own.
    assert [(r["esp"], r["customer_id"], r["source"]) for r in rows(store, EspCustomer)] == [
        ("Twilio SendGrid", SENDGRID_USER, "learned")]

    acme_report = company(report(home, dns_server))
    assert acme_report["verdict"] == "clean"
    assert acme_report["counts"]["processor"] == 1


def test_the_esp_signature_alone_never_excuses_failing_the_companys_dmarc(
    running: RunningListener, acme: str, store: Store, keys: dict[str, DkimKey], home: Home,
    dns_server: str,
) -> None:
    # Signed by SendGrid only, claiming Acme, which publishes p=reject: any SendGrid
    # customer can do this. It is a forgery, not Acme's processor.
    raw = keys["sendgrid"].sign(acme_newsletter(**{"X-SG-EID": "u001.other"}))
    send(running, acme, raw, mail_from=SENDGRID_BOUNCE, client=SENDGRID_IP, helo=SENDGRID_HELO)
    message = one_message(store)
    assert message["relation"] == "spoofed", message["reason"]
    assert "p=reject" in message["reason"]
    assert company(report(home, dns_server))["verdict"] == "leaked"


def test_a_marketer_authenticated_as_itself_is_third_party_and_the_company_shared(
    running: RunningListener, acme: str, store: Store, keys: dict[str, DkimKey], home: Home,
    dns_server: str,
) -> None:
    raw = keys["dealblaster"].sign(make_message(
        sender='"DealBlaster" <offers@dealblaster.example>', subject="Deals picked for you",
        headers={"List-Unsubscribe": "<mailto:unsub@dealblaster.example>"}))
    send(running, acme, raw, mail_from="bounce@dealblaster.example", client=DEALS_IP,
         helo=DEALS_HELO)

    message = one_message(store)
    assert message["relation"] == "third_party"
    assert message["sender_org"] == "dealblaster.example"
    assert (message["auth_method"], message["auth_domain"]) == ("dkim", "dealblaster.example")

    acme_report = company(report(home, dns_server))
    assert acme_report["verdict"] == "shared"
    assert acme_report["confidence"] == "medium", "one message is never high"
    assert "DKIM" in acme_report["confidence_reason"]
    (sender,) = acme_report["unexpected_senders"]
    assert sender["organisation"] == "dealblaster.example"
    assert sender["relation"] == "third_party"
    assert sender["authenticated_by"] == [{"method": "dkim", "domain": "dealblaster.example"}]
    assert sender["examples"][0]["sha256"] == message["sha256"]


@pytest.mark.parametrize(
    ("mail_from", "spf"),
    [("promo@cheap-pills.example", "softfail"), ("promo@no-records.example", "none")],
    ids=["spf-softfail", "spf-none"],
)
def test_plain_spam_is_unverified_and_the_company_leaked(
    running: RunningListener, acme: str, store: Store, home: Home, dns_server: str,
    mail_from: str, spf: str,
) -> None:
    domain = mail_from.partition("@")[2]
    raw = make_message(sender=f"Pharmacy <{mail_from}>", subject="Cheap pills")
    send(running, acme, raw, mail_from=mail_from, client=SPAM_IP, helo=SPAM_HELO)

    message = one_message(store)
    assert message["relation"] == "unverified"
    assert message["sender_org"] == domain
    assert (message["auth_method"], message["auth_domain"]) == ("none", None)
    assert json.loads(message["authentication"])["spf"]["result"] == spf
    assert f"SPF {spf}" in message["reason"]

    acme_report = company(report(home, dns_server))
    assert acme_report["verdict"] == "leaked"
    assert acme_report["confidence"] == "low"
    assert [s["relation"] for s in acme_report["unexpected_senders"]] == ["unverified"]


def test_a_forged_from_of_the_company_failing_dmarc_is_spoofed(
    running: RunningListener, acme: str, store: Store, home: Home, dns_server: str,
) -> None:
    raw = make_message(sender='"Acme Security" <security@acme.example>',
                       subject="Verify your account")
    send(running, acme, raw, mail_from="security@acme.example", client=FORGER_IP,
         helo=FORGER_HELO)

    message = one_message(store)
    assert message["relation"] == "spoofed"
    assert message["sender_org"] == "acme.example"
    assert "DMARC" in message["reason"] and "p=reject" in message["reason"]
    auth = json.loads(message["authentication"])
    assert (auth["spf"]["result"], auth["dmarc"]["result"]) == ("fail", "fail")

    acme_report = company(report(home, dns_server))
    assert acme_report["verdict"] == "leaked"
    assert acme_report["confidence"] == "medium"
    assert "forging" in acme_report["confidence_reason"]


# --- Authentication-Results from upstream ------------------------------------------------------


FORGED_RESULTS = "{authserv}; dkim=pass header.d=acme.example; spf=pass"


@pytest.mark.parametrize(
    ("trusted", "authserv", "relation"),
    [
        ((), "evil.example", "spoofed"),
        (("mx.user.example",), "evil.example", "spoofed"),
        ((), "mx.user.example", "spoofed"),
        (("mx.user.example",), "mx.user.example", "first_party"),
    ],
    ids=["untrusted-none-configured", "untrusted-other-id", "trusted-id-not-configured",
         "trusted-id"],
)
def test_authentication_results_are_believed_only_from_a_trusted_authserv_id(
    world: Zones, home: Home, store: Store, resolver: Resolver, acme: str,
    trusted: tuple[str, ...], authserv: str, relation: str,
) -> None:
    raw = make_message(sender='"Acme" <news@acme.example>', subject="Your invoice", headers={
        "Authentication-Results": FORGED_RESULTS.format(authserv=authserv)})
    started = start_listener(home, store, resolver, trusted_upstream=trusted)
    try:
        send(started, acme, raw, mail_from="news@acme.example", client=FORGER_IP,
             helo=FORGER_HELO)
        message = one_message(store)
    finally:
        started.stop()
    assert message["relation"] == relation, message["reason"]
    auth = json.loads(message["authentication"])
    if relation == "first_party":
        assert auth["upstream"] == "mx.user.example"
        assert (message["auth_method"], message["auth_domain"]) == ("dkim", "acme.example")
    else:
        assert auth["upstream"] is None
        assert auth["dkim"] == [], "a header claiming dkim=pass is no signature"
        assert auth["spf"]["result"] == "fail"


# --- temporary DNS failure and retry ---------------------------------------------------------


@pytest.mark.parametrize("silent", ["s1._domainkey.acme.example", "acme.example"],
                         ids=["dkim-key", "spf-record"])
def test_a_dns_timeout_leaves_the_message_pending_until_a_retry_settles_it(
    running: RunningListener, world: Zones, acme: str, store: Store, home: Home,
    keys: dict[str, DkimKey], resolver: Resolver, dns_server: str, silent: str,
) -> None:
    world.add_timeout(silent)
    raw = keys["acme"].sign(acme_newsletter())
    send(running, acme, raw, mail_from="bounce@acme.example", client=ACME_IP, helo=ACME_HELO)

    waiting = one_message(store)
    assert waiting["analysed_at"] is None
    assert waiting["relation"] is None, "a timeout never settles as unauthenticated"
    assert waiting["temperror"] and silent in waiting["temperror"]
    assert waiting["retry_at"] is not None and waiting["retry_at"] > waiting["received_at"]
    assert waiting["attempts"] == 1
    counts = company(report(home, dns_server))["counts"]
    assert (counts["pending"], counts["temperror"]) == (1, 1)

    running.stop()  # the listener's analyst is no longer a second reader
    world.end_timeout(silent)
    retry_at = waiting["retry_at"]
    later = retry_at + timedelta(seconds=1)
    assert analyse_pending(store, AnalysisSettings(resolver), lambda: later) == 1

    (message,) = rows(store, Message)
    assert message["analysed_at"] is not None
    assert (message["temperror"], message["retry_at"]) == (None, None)
    assert message["attempts"] == 2
    assert message["relation"] == "first_party"
    assert (message["auth_method"], message["auth_domain"]) == ("dkim", "acme.example")
    assert company(report(home, dns_server))["verdict"] == "clean"


def test_a_retry_before_retry_at_does_not_touch_the_message(
    running: RunningListener, world: Zones, acme: str, store: Store, keys: dict[str, DkimKey],
    resolver: Resolver,
) -> None:
    world.add_timeout("s1._domainkey.acme.example")
    send(running, acme, keys["acme"].sign(acme_newsletter()), mail_from="bounce@acme.example",
         client=ACME_IP, helo=ACME_HELO)
    waiting = one_message(store)
    running.stop()
    world.end_timeout()
    early = waiting["retry_at"] - timedelta(seconds=1)
    assert analyse_pending(store, AnalysisSettings(resolver), lambda: early) == 0
    (message,) = rows(store, Message)
    assert (message["relation"], message["attempts"]) == (None, 1)


# --- XFORWARD and the evidence kept -----------------------------------------------------------


def test_xforward_from_an_untrusted_peer_is_refused_and_the_real_peer_kept(
    world: Zones, home: Home, store: Store, resolver: Resolver, acme: str,
    keys: dict[str, DkimKey],
) -> None:
    started = start_listener(home, store, resolver, xforward_peers=frozenset())
    try:
        with smtplib.SMTP(started.host, started.port, local_hostname=FORGER_HELO,
                          timeout=10) as smtp:
            smtp.ehlo()
            assert not smtp.has_extn("xforward")
            code, text = smtp.docmd("XFORWARD", f"ADDR={ACME_IP} HELO={ACME_HELO}")
            assert (code, text[:5]) == (550, b"5.7.0")
            # Borrowing Acme's address failed, so its SPF does not cover this client.
            raw = make_message(sender='"Acme" <news@acme.example>', subject="Invoice")
            assert smtp.sendmail("news@acme.example", [acme], crlf(raw)) == {}
        message = one_message(store)
    finally:
        started.stop()
    assert message["peer_ip"] == "127.0.0.1"
    assert message["helo"] == FORGER_HELO
    assert message["forwarded_by"] is None
    assert message["relation"] == "spoofed"


def test_the_dns_answers_used_are_kept_with_the_message(
    running: RunningListener, acme: str, store: Store, keys: dict[str, DkimKey],
) -> None:
    send(running, acme, keys["acme"].sign(acme_newsletter()), mail_from="bounce@acme.example",
         client=ACME_IP, helo=ACME_HELO)
    message = one_message(store)
    answers = {(a["name"], a["type"]): a for a in json.loads(message["dns_answers"])}
    key = answers[("s1._domainkey.acme.example", "TXT")]
    assert key["records"] == [keys["acme"].record]
    assert len(keys["acme"].record) > 255, "a 2048-bit key spans several TXT strings"
    assert answers[("acme.example", "TXT")]["records"] == [f"v=spf1 ip4:{ACME_IP} -all"]
    assert answers[("_dmarc.acme.example", "TXT")]["records"][0].startswith("v=DMARC1; p=reject")

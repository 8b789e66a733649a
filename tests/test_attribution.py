"""Who sent a message and how it relates to the company: the rules, by plain function calls.

Each test builds the parsed message and the authentication results as
analysis would hand them over, and checks the relation, the sender and the
reason a person reads. The end-to-end versions, with real DKIM signatures,
ARC seals and DNS, are the accuracy corpus (`tests/test_corpus.py`).
"""

from __future__ import annotations

import pytest
from factories import dkim, make_message, spf

from canary.attribution import (
    Attribution,
    CompanyContext,
    Relation,
    attribute_message,
    is_backscatter,
    learnable_accounts,
)
from canary.authentication import (
    NO_ARC,
    ArcResult,
    ArcVouch,
    Authentication,
    Disposition,
    DkimResult,
    DmarcResult,
    Result,
    SpfResult,
    UpstreamResults,
)
from canary.esp import EspSending
from canary.message import read_message
from canary.senders import SenderKind, part_of_name, same_business

ACME = CompanyContext(frozenset({"acme.example", "acme.co.uk"}), ("Acme Coffee", "acme-coffee"))


def auth(*, spf_result: Result = Result.NONE, spf_domain: str | None = None,
         dkim_pass: tuple[str, ...] = (), dkim_fail: tuple[str, ...] = (),
         dmarc: Result = Result.NONE, policy: Disposition | None = None,
         aligned_dkim: str | None = None, aligned_spf: str | None = None,
         from_spf: Result | None = None, arc: ArcResult = NO_ARC) -> Authentication:
    return Authentication(
        spf=SpfResult(spf_result, spf_domain),
        dkim=tuple(DkimResult(Result.PASS, d) for d in dkim_pass)
        + tuple(DkimResult(Result.FAIL, d) for d in dkim_fail),
        dmarc=DmarcResult(dmarc, policy, None, aligned_dkim, aligned_spf),
        from_spf=SpfResult(from_spf, "acme.example") if from_spf else None,
        arc=arc,
    )


def decide(raw: bytes, authentication: Authentication, *, esp: EspSending | None = None,
           company: CompanyContext = ACME, null_sender: bool = False) -> Attribution:
    return attribute_message(read_message(raw), authentication, esp, company,
                             null_sender=null_sender)


def mail(sender: str, **headers: str) -> bytes:
    return make_message(sender=sender, headers=headers)


# --- the company's own mail ------------------------------------------------------------------


def test_the_companys_domain_authenticated_is_first_party() -> None:
    result = decide(mail("news@acme.example"),
                    auth(dkim_pass=("acme.example",), dmarc=Result.PASS,
                         policy=Disposition.REJECT, aligned_dkim="acme.example"))
    assert result.relation is Relation.FIRST_PARTY
    assert result.sender.name == "acme.example"
    assert result.authenticated_by == dkim("acme.example")


def test_a_subdomain_of_the_company_is_the_company() -> None:
    result = decide(mail('"Acme" <deals@news.mail.acme.co.uk>'),
                    auth(dmarc=Result.PASS, policy=Disposition.NONE,
                         aligned_spf="news.mail.acme.co.uk"))
    assert result.relation is Relation.FIRST_PARTY
    assert result.sender.name == "acme.co.uk"


def test_the_companys_aligned_mail_through_its_esp_is_its_processor() -> None:
    esp = EspSending("Twilio SendGrid", "4221", dkim("sendgrid.net"))
    result = decide(mail("deals@acme.example"),
                    auth(dkim_pass=("acme.example", "sendgrid.net"), dmarc=Result.PASS,
                         policy=Disposition.REJECT, aligned_dkim="acme.example"), esp=esp)
    assert result.relation is Relation.PROCESSOR
    assert result.sender.via == "Twilio SendGrid"
    assert learnable_accounts(result, esp, ACME) == (("Twilio SendGrid", "4221"),)


def test_a_forgery_of_a_company_that_enforces_dmarc_is_spoofed() -> None:
    result = decide(mail("security@acme.example"),
                    auth(dmarc=Result.FAIL, policy=Disposition.REJECT))
    assert result.relation is Relation.SPOOFED
    assert "p=reject" in result.reason


def test_an_esp_signature_does_not_excuse_failing_an_enforced_dmarc() -> None:
    esp = EspSending("Twilio SendGrid", "9999", dkim("sendgrid.net"))
    result = decide(mail("security@acme.example"),
                    auth(dkim_pass=("sendgrid.net",), dmarc=Result.FAIL,
                         policy=Disposition.QUARANTINE), esp=esp)
    assert result.relation is Relation.SPOOFED
    assert learnable_accounts(result, esp, ACME) == ()


def test_a_dmarc_failure_under_p_none_proves_nothing_either_way() -> None:
    result = decide(mail("news@acme.example"), auth(dmarc=Result.FAIL, policy=Disposition.NONE))
    assert result.relation is Relation.UNPROVEN
    assert "p=none" in result.reason
    assert not result.relation.expected and not result.relation.unexpected


def test_the_companys_p_none_esp_is_its_processor_until_a_customer_id_is_known() -> None:
    esp = EspSending("Mailchimp", "u-1", dkim("mcsv.net"))
    failing = auth(dkim_pass=("mcsv.net",), dmarc=Result.FAIL, policy=Disposition.NONE)
    result = decide(mail("news@acme.example"), failing, esp=esp)
    assert result.relation is Relation.PROCESSOR
    assert "not confirmed yet" in result.reason


def test_another_customer_of_the_companys_esp_claiming_it_is_spoofed() -> None:
    known = CompanyContext(ACME.domains, ACME.names, frozenset({("Mailchimp", "u-1")}))
    failing = auth(dkim_pass=("mcsv.net",), dmarc=Result.FAIL, policy=Disposition.NONE)
    own = decide(mail("news@acme.example"), failing,
                 esp=EspSending("Mailchimp", "u-1", dkim("mcsv.net")), company=known)
    other = decide(mail("news@acme.example"), failing,
                   esp=EspSending("Mailchimp", "u-666", dkim("mcsv.net")), company=known)
    assert own.relation is Relation.PROCESSOR
    assert "confirmed as the company's" in own.reason
    assert other.relation is Relation.SPOOFED
    assert "u-666" in other.reason and "u-1" in other.reason


def test_without_dmarc_the_from_domains_own_spf_decides() -> None:
    passing = decide(mail("news@acme.example"), auth(from_spf=Result.PASS))
    failing = decide(mail("news@acme.example"), auth(from_spf=Result.FAIL))
    softfail = decide(mail("news@acme.example"), auth(from_spf=Result.SOFTFAIL))
    nothing = decide(mail("news@acme.example"), auth(from_spf=Result.NONE))
    assert passing.relation is Relation.FIRST_PARTY
    assert passing.authenticated_by == spf("acme.example")
    assert failing.relation is Relation.UNPROVEN, "SPF -all without DMARC: not first party"
    assert softfail.relation is Relation.UNPROVEN
    assert nothing.relation is Relation.FIRST_PARTY
    assert "unauthenticated" in nothing.reason


def test_the_companys_envelope_domain_refused_by_its_spf_is_spoofed() -> None:
    result = decide(mail("news@acme.example"),
                    auth(spf_result=Result.FAIL, spf_domain="acme.example"))
    assert result.relation is Relation.SPOOFED


def test_a_trusted_arc_seal_vouches_for_mail_broken_in_forwarding() -> None:
    seal = ArcResult(Result.PASS, (ArcVouch(1, "acme.example", UpstreamResults(
        "mx.acme.example", None, (DkimResult(Result.PASS, "acme.example"),), Result.PASS)),))
    broken = auth(dkim_fail=("acme.example",), dmarc=Result.FAIL, policy=Disposition.REJECT,
                  arc=seal)
    result = decide(mail("news@acme.example"), broken)
    assert result.relation is Relation.FIRST_PARTY
    assert "ARC seal of acme.example" in result.reason
    # The same seal from a sealer nobody trusts is anyone's word.
    stranger = ArcResult(Result.PASS, (ArcVouch(1, "sealer.example", seal.vouches[0].results),))
    result = decide(mail("news@acme.example"),
                    auth(dmarc=Result.FAIL, policy=Disposition.REJECT, arc=stranger))
    assert result.relation is Relation.SPOOFED
    trusting = CompanyContext(ACME.domains, ACME.names, trusted_sealers=frozenset({
        "sealer.example"}))
    result = decide(mail("news@acme.example"),
                    auth(dmarc=Result.FAIL, policy=Disposition.REJECT, arc=stranger),
                    company=trusting)
    assert result.relation is Relation.FIRST_PARTY
    # A broken chain vouches for nothing, whoever sealed it.
    failed = ArcResult(Result.FAIL, seal.vouches)
    result = decide(mail("news@acme.example"),
                    auth(dmarc=Result.FAIL, policy=Disposition.REJECT, arc=failed))
    assert result.relation is Relation.SPOOFED


def test_the_companys_list_server_sending_for_another_author_is_the_company() -> None:
    raw = mail('"A Sponsor" <offers@sponsor.example>', Sender="lists@acme.example",
               **{"List-Id": "Acme news <news.acme.example>"})
    result = decide(raw, auth(dkim_pass=("acme.example",), dmarc=Result.FAIL,
                              policy=Disposition.NONE))
    assert result.relation is Relation.FIRST_PARTY
    assert "lists@acme.example" in result.reason
    # Without a passing signature of the company, a Sender header is anyone's claim.
    forged = decide(raw, auth(dmarc=Result.FAIL, policy=Disposition.NONE))
    assert forged.relation is Relation.UNVERIFIED


# --- other senders ---------------------------------------------------------------------------


def test_another_organisation_authenticated_as_itself_is_a_third_party() -> None:
    result = decide(mail("offers@broker.example"),
                    auth(dkim_pass=("broker.example",), dmarc=Result.PASS,
                         policy=Disposition.NONE, aligned_dkim="broker.example"))
    assert result.relation is Relation.THIRD_PARTY
    assert result.accusable
    assert result.sender.kind is SenderKind.ORGANISATION


def test_another_organisation_not_authenticated_is_unverified() -> None:
    result = decide(mail("winner@spam.example"),
                    auth(spf_result=Result.SOFTFAIL, spf_domain="spam.example"))
    assert result.relation is Relation.UNVERIFIED
    assert not result.accusable


def test_an_esp_signature_proves_its_customer_not_the_from_domain() -> None:
    esp = EspSending("Twilio SendGrid", "77", dkim("sendgrid.net"))
    result = decide(mail("offers@broker.example"),
                    auth(dkim_pass=("sendgrid.net",), dmarc=Result.NONE), esp=esp)
    assert result.relation is Relation.UNVERIFIED
    assert "Twilio SendGrid" in result.reason


@pytest.mark.parametrize(("sender", "kind", "name"), [
    ("jane.doe@gmail.com", SenderKind.MAILBOX, "jane.doe@gmail.com"),
    ("contoso-news@contoso.onmicrosoft.com", SenderKind.TENANT, "contoso.onmicrosoft.com"),
    ("dealsgroup@googlegroups.com", SenderKind.GROUP, "dealsgroup@googlegroups.com"),
])
def test_shared_tenant_senders_are_never_an_organisation(sender: str, kind: SenderKind,
                                                         name: str) -> None:
    domain = sender.rpartition("@")[2]
    result = decide(mail(sender), auth(dkim_pass=(domain,), dmarc=Result.PASS,
                                       policy=Disposition.NONE, aligned_dkim=domain))
    assert result.relation is Relation.THIRD_PARTY
    assert (result.sender.kind, result.sender.name) == (kind, name)
    assert not result.accusable, "a mailbox, group or tenant proves only the address is out"


MEGAMART = CompanyContext(frozenset({"megamart.example"}), ("MegaMart", "megamart"))
CYRILLIC_A = "\u0430"


@pytest.mark.parametrize("sender", [
    "security@megamart-security.example", "support@megamarrt.example",
    "info@megarnart.example", "login@" + f"meg{CYRILLIC_A}mart.example".encode("idna").decode(),
    "news@megamart.net", "deals@securemegamart.example",
])
def test_look_alikes_of_the_company_are_impersonation_even_when_authenticated(sender: str
                                                                            ) -> None:
    domain = sender.rpartition("@")[2]
    result = decide(mail(sender), auth(dkim_pass=(domain,), dmarc=Result.PASS,
                                       policy=Disposition.REJECT, aligned_dkim=domain),
                    company=MEGAMART)
    assert result.relation is Relation.IMPERSONATION, result.reason
    assert not result.accusable


def test_a_short_company_name_is_not_judged_by_spelling() -> None:
    # "acme" is four letters: a one-letter change is another honest name as often as not.
    result = decide(mail("news@acne.example"),
                    auth(dkim_pass=("acne.example",), dmarc=Result.PASS,
                         policy=Disposition.NONE, aligned_dkim="acne.example"))
    assert result.relation is Relation.THIRD_PARTY


def test_an_honest_business_with_a_different_name_is_no_look_alike() -> None:
    result = decide(mail("hello@acmetools.example"),
                    auth(dkim_pass=("acmetools.example",), dmarc=Result.PASS,
                         policy=Disposition.NONE, aligned_dkim="acmetools.example"))
    assert result.relation is Relation.THIRD_PARTY


@pytest.mark.parametrize(("raw", "null_sender"), [
    (b"From: Mail Delivery System <mailer-daemon@mx.isp.example>\r\nContent-Type: multipart/"
     b"report; report-type=delivery-status; boundary=x\r\nSubject: Undelivered\r\n\r\n--x--",
     True),
    (make_message(sender="holiday@isp.example", headers={"Auto-Submitted": "auto-replied"}),
     False),
    (make_message(sender="mailer-daemon@isp.example"), False),
    (make_message(sender="someone@isp.example"), True),
    (make_message(sender="desk@isp.example", headers={"Delivered-To": "Autoresponder"}), False),
    (make_message(sender="desk@isp.example", headers={"X-Autoreply": "yes"}), False),
    (make_message(sender="lists@isp.example",
                  subject="Your confirmation is needed to join the news list"), False),
], ids=["delivery-report", "auto-reply", "mailer-daemon", "null-sender", "qmail-autorespond",
        "x-autoreply", "subscription-confirmation"])
def test_bounces_and_auto_replies_are_backscatter(raw: bytes, null_sender: bool) -> None:
    result = decide(raw, auth(dkim_pass=("isp.example",), dmarc=Result.PASS,
                              policy=Disposition.NONE, aligned_dkim="isp.example"),
                    null_sender=null_sender)
    assert result.relation is Relation.BACKSCATTER
    assert not result.accusable


@pytest.mark.parametrize("raw", [
    make_message(sender="postmaster@isp.example"),
    make_message(sender="deals@isp.example", subject="Re: your parcel"),
    make_message(sender="deals@isp.example", subject="Confirm your email address"),
], ids=["postmaster-with-an-envelope", "re-subject", "account-confirmation"])
def test_a_bounce_address_or_a_reply_subject_alone_is_no_backscatter(raw: bytes) -> None:
    """Mailgun's quick-start sender is postmaster@, and spammers write 'Re:': an
    authenticated sender of either is still accountable."""
    result = decide(raw, auth(dkim_pass=("isp.example",), dmarc=Result.PASS,
                              policy=Disposition.NONE, aligned_dkim="isp.example"))
    assert result.relation is Relation.THIRD_PARTY
    assert result.accusable


def test_auto_generated_mail_is_not_backscatter() -> None:
    facts = read_message(make_message(sender="news@shop.example",
                                      headers={"Auto-Submitted": "auto-generated"}))
    assert is_backscatter(facts, null_sender=False) is None


# --- platforms that send for merchants ---------------------------------------------------------


SQUARE = auth(dkim_pass=("squareup.com",), dmarc=Result.PASS, policy=Disposition.REJECT,
              aligned_dkim="squareup.com")


def test_a_platform_receipt_naming_the_company_is_its_processor() -> None:
    result = decide(mail('"Acme Coffee" <noreply@messaging.squareup.com>'), SQUARE)
    assert result.relation is Relation.PROCESSOR
    assert (result.sender.kind, result.sender.name, result.sender.via) == (
        SenderKind.MERCHANT, "Acme Coffee", "Square")


def test_a_platform_naming_the_company_by_its_reply_to_domain_is_its_processor() -> None:
    raw = mail('"The Bean Counter" <noreply@messaging.squareup.com>',
               **{"Reply-To": "orders@acme.example"})
    assert decide(raw, SQUARE).relation is Relation.PROCESSOR


def test_a_platform_naming_another_merchant_is_that_merchant() -> None:
    result = decide(mail('"Cafe Rouge" <noreply@messaging.squareup.com>'), SQUARE)
    assert result.relation is Relation.THIRD_PARTY
    assert (result.sender.name, result.sender.via) == ("Cafe Rouge", "Square")
    assert result.accusable


def test_a_platform_naming_no_merchant_proves_nothing() -> None:
    raw = mail('"PayPal" <service@paypal.com>')
    result = decide(raw, auth(dkim_pass=("paypal.com",), dmarc=Result.PASS,
                              policy=Disposition.REJECT, aligned_dkim="paypal.com"))
    assert result.relation is Relation.UNPROVEN
    assert result.sender.kind is SenderKind.PLATFORM


def test_an_unauthenticated_platform_domain_is_judged_like_any_other_mail() -> None:
    result = decide(mail('"Acme Coffee" <noreply@messaging.squareup.com>'),
                    auth(dmarc=Result.FAIL, policy=Disposition.REJECT))
    assert result.relation is Relation.UNVERIFIED


def test_an_esps_shared_from_names_its_customer() -> None:
    esp = EspSending("Constant Contact", "5", dkim("constantcontact.com"))
    own = decide(mail("news-acme.example@shared1.ccsend.com"),
                 auth(dkim_pass=("constantcontact.com",)), esp=esp)
    other = decide(mail("deals-broker.example@shared1.ccsend.com"),
                   auth(dkim_pass=("constantcontact.com",)), esp=esp)
    assert own.relation is Relation.PROCESSOR
    assert other.relation is Relation.THIRD_PARTY
    assert (other.sender.name, other.sender.via) == ("broker.example", "Constant Contact")


# --- From oddities ----------------------------------------------------------------------------


@pytest.mark.parametrize("order", [("security@acme.co.uk", "winner@prize-centre.example"),
                                   ("winner@prize-centre.example", "security@acme.co.uk")])
def test_two_from_addresses_mixing_the_company_with_another_are_spoofed(
    order: tuple[str, str],
) -> None:
    raw = (f"From: {order[0]}\r\nFrom: {order[1]}\r\nSubject: Claim\r\n\r\nYou won.").encode()
    result = decide(raw, auth())
    assert result.relation is Relation.SPOOFED
    assert result.sender.name == "prize-centre.example"
    assert "acme.co.uk" in result.reason


def test_no_from_is_unverified_with_no_sender() -> None:
    result = decide(b"Subject: hello\r\n\r\nbody", auth())
    assert result.relation is Relation.UNVERIFIED
    assert result.sender.kind is SenderKind.UNKNOWN


# --- names, platforms and shared From ------------------------------------------------------


@pytest.mark.parametrize(("named", "names", "same"), [
    ("MegaMart Ltd", ("megamart",), True),
    ("Mega Mart Online", ("megamart",), True),
    ("Acme Outfitters Store", ("Acme Outfitters",), True),
    ("Bloomfield Farm Shop", ("Bloom",), False),
    ("ACME", ("Acme Outfitters", "acme-outfitters"), False),
    ("Café Nonna", ("Cafe Nonna",), True),
    ("", ("Acme",), False),
])
def test_a_merchant_is_the_company_only_by_whole_words(named: str, names: tuple[str, ...],
                                                       same: bool) -> None:
    assert same_business(named, names) is same


def test_a_short_form_of_the_name_is_neither_the_company_nor_another() -> None:
    assert part_of_name("ACME", ("Acme Outfitters",))
    assert not part_of_name("Bloomfield", ("Bloom",))


def test_a_dmarc_policy_applied_to_part_of_the_mail_is_still_monitoring() -> None:
    partial = Authentication(spf=SpfResult(Result.FAIL, "bulk.example"), dkim=(),
                             dmarc=DmarcResult(Result.FAIL, Disposition.QUARANTINE,
                                               "acme.example", None, None, pct=50))
    result = decide(mail("news@acme.example"), partial)
    assert result.relation is Relation.UNPROVEN
    assert "pct=50" in result.reason


def test_a_platform_account_named_after_another_brand_is_no_business() -> None:
    result = decide(mail('"PayPal Resolution Center" <support@paypal-resolution.zohodesk.com>'),
                    auth(dkim_pass=("zohodesk.com",), dmarc=Result.PASS,
                         policy=Disposition.NONE, aligned_dkim="zohodesk.com"))
    assert result.relation is Relation.THIRD_PARTY
    assert result.sender.kind is SenderKind.TENANT
    assert not result.accusable
    assert "PayPal" in result.reason


def test_a_platform_account_confirmed_as_the_companys_is_its_processor() -> None:
    stripe = auth(dkim_pass=("stripe.com",), dmarc=Result.PASS, policy=Disposition.REJECT,
                  aligned_dkim="stripe.com")
    first = decide(mail('"Acme Coffee" <receipts+acct_1Acme@stripe.com>'), stripe)
    assert first.relation is Relation.PROCESSOR
    assert first.confirms == (("Stripe", "acct_1acme"),)
    short = mail('"Coffee" <receipts+acct_1Acme@stripe.com>')
    assert decide(short, stripe).relation is Relation.UNPROVEN
    learned = CompanyContext(ACME.domains, ACME.names, frozenset(first.confirms))
    assert decide(short, stripe, company=learned).relation is Relation.PROCESSOR


def test_a_rewritten_free_mail_customer_is_that_mailbox() -> None:
    result = decide(mail('"Carl\'s Coffee" <carlscoffee-gmail.com@shared1.ccsend.com>'),
                    auth(dkim_pass=("ccsend.com",)),
                    esp=EspSending("Constant Contact", "1100", dkim("ccsend.com")))
    assert result.relation is Relation.THIRD_PARTY
    assert (result.sender.kind, result.sender.name) == (SenderKind.MAILBOX,
                                                        "carlscoffee@gmail.com")
    assert not result.accusable


def test_display_name_impersonation_needs_an_authenticated_sender() -> None:
    posing = mail('"Acme Coffee Security Team" <alerts@review-center.example>')
    signed = decide(posing, auth(dkim_pass=("review-center.example",), dmarc=Result.PASS,
                                 policy=Disposition.NONE, aligned_dkim="review-center.example"))
    assert signed.relation is Relation.IMPERSONATION
    assert not signed.accusable
    assert decide(posing, auth()).relation is Relation.UNVERIFIED


def test_a_post_on_an_open_discussion_list_is_the_list_not_a_business() -> None:
    result = decide(make_message(sender='"Tom via Discuss" <discuss@lists.velo.example>',
                                 headers={"List-Id": "<discuss.lists.velo.example>",
                                          "List-Post": "<mailto:discuss@lists.velo.example>"}),
                    auth(dkim_pass=("lists.velo.example",), dmarc=Result.PASS,
                         policy=Disposition.NONE, aligned_dkim="lists.velo.example"))
    assert result.relation is Relation.THIRD_PARTY
    assert (result.sender.kind, result.sender.name) == (SenderKind.GROUP,
                                                        "discuss.lists.velo.example")
    assert not result.accusable


def test_a_forger_using_the_companys_envelope_domain_is_spoofing() -> None:
    result = decide(mail("winner@prize-centre.example"),
                    auth(spf_result=Result.FAIL, spf_domain="lists.acme.example"))
    assert result.relation is Relation.SPOOFED


def test_an_arc_seal_vouches_only_for_the_from_it_names() -> None:
    sealed = ArcResult(Result.PASS, (ArcVouch(1, "lists.example", UpstreamResults(
        "lists.example", None, (), Result.PASS, "dealblaster.example")),))
    other = decide(mail("deals@couponcrate.example"), auth(arc=sealed),
                   company=CompanyContext(ACME.domains, ACME.names,
                                          trusted_sealers=frozenset({"lists.example"})))
    assert other.relation is Relation.UNVERIFIED
    named = decide(mail("deals@dealblaster.example"), auth(arc=sealed),
                   company=CompanyContext(ACME.domains, ACME.names,
                                          trusted_sealers=frozenset({"lists.example"})))
    assert named.relation is Relation.THIRD_PARTY
    assert str(named.authenticated_by) == "ARC sealed by lists.example"

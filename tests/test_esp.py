"""The ESP fingerprint table and `identify_esp`: who carried a message, for which customer.

Header values are shaped like those real ESPs write (seen in public
mailing-list archives), with ids changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from canary.domains import normalise_domain, organisational_domain
from canary.esp import EspMatch, esp_for_domain, identify_esp, load_esps, parse_esps

MC_USER = "2847aeac75bc1f80d89becc33"
OTHER_MC_USER = "9d7ced8c4bbd6c2f238673f0f"
SES_SENDER = "1.us-west-2.dpZ3+4zb8Tw1/c7xkFZPskvGKx/SAg98+h1xxHxUxV4="


def identify(
    *,
    dkim: Sequence[str] = (),
    return_path: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> EspMatch | None:
    return identify_esp(dkim_pass_domains=dkim, return_path_domain=return_path, headers=headers)


# --- the table -------------------------------------------------------------------------------


def test_table_has_at_least_25_esps_with_unique_names() -> None:
    names = [esp.name for esp in load_esps()]
    assert len(names) >= 25
    assert len({name.casefold() for name in names}) == len(names)


@pytest.mark.parametrize(
    "name",
    [
        "Mailchimp",
        "Mandrill",
        "SendGrid",
        "Amazon SES",
        "Mailgun",
        "Salesforce Marketing Cloud",
        "Braze",
        "Klaviyo",
        "HubSpot",
        "Brevo",
        "Postmark",
        "SparkPost",
        "Constant Contact",
        "Campaign Monitor",
        "Iterable",
        "Customer.io",
        "Marketo",
        "Responsys",
        "Acoustic",
        "Cheetah",
        "Emarsys",
        "Mailjet",
    ],
)
def test_table_covers_the_major_esps(name: str) -> None:
    assert any(name.casefold() in esp.name.casefold() for esp in load_esps())


def test_every_domain_is_a_valid_lower_case_name_below_a_public_suffix() -> None:
    for esp in load_esps():
        assert esp.signing_domains or esp.bounce_domains, esp.name
        for domain in esp.signing_domains + esp.bounce_domains:
            assert normalise_domain(domain) == domain, (esp.name, domain)
            assert organisational_domain(domain) is not None, (esp.name, domain)


def test_every_customer_id_header_has_a_pattern_with_one_group() -> None:
    for esp in load_esps():
        for header in esp.headers:
            if header.customer_id:
                assert header.pattern is not None and header.pattern.groups == 1, header


# --- strongest evidence first ----------------------------------------------------------------


def test_mailchimp_by_dkim_with_customer_from_x_mc_user() -> None:
    match = identify(
        dkim=["news.acme.co.uk", "mcsv.net"],
        headers=[("X-MC-User", MC_USER), ("Subject", "Café week")],
    )
    assert match == EspMatch("Mailchimp", MC_USER, "DKIM d=mcsv.net")


def test_customer_id_comes_from_headers_even_when_dkim_identified_the_esp() -> None:
    match = identify(
        dkim=["mailchimpapp.net"],
        return_path="mail150.suw14.mcdlv.net",
        headers=[("Feedback-ID", "146412474:146412474.3551972:us2:mc")],
    )
    assert match is not None
    assert match.evidence == "DKIM d=mailchimpapp.net"
    assert match.customer_id == "146412474"


def test_sendgrid_by_return_path() -> None:
    match = identify(
        dkim=["ifttt.com"],
        return_path="bounce.em.sendgrid.net",
        headers=[("X-Feedback-ID", "4296082:rjGh1C9aJP8EjQqcQ9UM8Jw2nCl6oq1q3+uiWe=:FkzOUah==:SG")],
    )
    assert match == EspMatch("Twilio SendGrid", "4296082", "Return-Path under sendgrid.net")


def test_return_path_may_be_given_as_the_whole_address() -> None:
    match = identify(return_path="<bounces+4296082-5721-someone=example.org@sendgrid.net>")
    assert match is not None and match.esp == "Twilio SendGrid"


def test_amazon_ses_sender_id_comes_from_feedback_id() -> None:
    match = identify(
        dkim=["ciplatform.org", "amazonses.com"],
        headers=[
            ("Feedback-ID", f"{SES_SENDER}:AmazonSES"),
            ("X-SES-Outgoing", "2023.11.20-54.240.27.52"),
        ],
    )
    assert match == EspMatch("Amazon SES", SES_SENDER, "DKIM d=amazonses.com")


def test_header_alone_identifies_the_esp_when_no_domain_does() -> None:
    match = identify(
        dkim=["mg.example.org"],
        return_path="mg.example.org",
        headers=[
            ("X-Mailgun-Sid", "WyI1MzIzYiIsICJsaXN0QGV4YW1wbGUub3JnIiwgImJlOWU0YSJd"),
            ("X-Feedback-Id", "5266b068fea3983e6007cc1a:mailgun"),
        ],
    )
    assert match == EspMatch("Mailgun", "5266b068fea3983e6007cc1a", "header X-Mailgun-Sid")


def test_dkim_that_did_not_pass_is_not_evidence() -> None:
    # The message carries a d=mcsv.net signature, but only acme's verified:
    # Mailchimp is then known only from its header, the weakest evidence.
    match = identify(dkim=["news.acme.co.uk"], headers=[("X-MC-User", MC_USER)])
    assert match == EspMatch("Mailchimp", MC_USER, "header X-MC-User")
    assert identify(dkim=["news.acme.co.uk"]) is None


def test_dkim_outranks_return_path_and_headers() -> None:
    match = identify(
        dkim=["pm.mtasv.net"],
        return_path="bounce.em.sendgrid.net",
        headers=[("X-MC-User", MC_USER)],
    )
    assert match is not None
    assert (match.esp, match.evidence) == ("Postmark", "DKIM d=pm.mtasv.net")


def test_same_esp_another_customer_gets_another_customer_id() -> None:
    first = identify(dkim=["mcsv.net"], headers=[("X-MC-User", MC_USER)])
    second = identify(dkim=["mcsv.net"], headers=[("X-MC-User", OTHER_MC_USER)])
    assert first is not None and second is not None
    assert first.esp == second.esp == "Mailchimp"
    assert first.customer_id != second.customer_id


def test_without_a_customer_header_the_customer_is_unknown() -> None:
    match = identify(dkim=["sendgrid.info"])
    assert match == EspMatch("Twilio SendGrid", None, "DKIM d=sendgrid.info")


def test_another_esps_feedback_id_does_not_give_the_customer() -> None:
    match = identify(
        dkim=["amazonses.com"], headers=[("Feedback-ID", "146412474:146412474.3551972:us2:mc")]
    )
    assert match == EspMatch("Amazon SES", None, "DKIM d=amazonses.com")


@pytest.mark.parametrize(
    ("headers", "esp", "customer"),
    [
        ([("X-Mandrill-User", "md_30504962")], "Mandrill (Mailchimp Transactional)", "30504962"),
        (
            [("Feedback-ID", "212.146.204.210:2683805_211:2683805:Sendinblue")],
            "Brevo (Sendinblue)",
            "2683805",
        ),
        (
            [("Feedback-ID", "s9849154-Y29uZg==:s9849154:a255437:postmark")],
            "Postmark",
            "a255437",
        ),
        ([("Feedback-Id", "42.1189921.1191387:MJ")], "Mailjet", "1189921"),
        ([("X-Roving-Id", "1133104752381.1111111111")], "Constant Contact", "1133104752381"),
        (
            [("X-MarketoID", "107-FMS-070:2597:6219:19445:0:4076:9:8007:8319249")],
            "Adobe Marketo Engage",
            "107-FMS-070",
        ),
        (
            [("Feedback-ID", "7230703:1934766:13.111.14.195:sfmktgcld")],
            "Salesforce Marketing Cloud",
            "7230703",
        ),
        ([("X-Kmail-Account", "W7Aufs")], "Klaviyo", "W7Aufs"),
        (
            [("X-rext", "6.interact5.ElZtzxWy6NfIw9kt1"), ("X-cid", "nastygal.102997285")],
            "Oracle Responsys",
            "nastygal",
        ),
    ],
)
def test_customer_ids_of_other_esps(
    headers: list[tuple[str, str]], esp: str, customer: str
) -> None:
    match = identify(headers=headers)
    assert match is not None
    assert (match.esp, match.customer_id) == (esp, customer)


# --- domains ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "esp"),
    [
        ("s1.mcsv.net", "Mailchimp"),
        ("mail202.atl271.mcdlv.net", "Mailchimp"),
        ("bounce.em.sendgrid.net", "Twilio SendGrid"),
        ("bf05.eu1.hubspotemail.net", "HubSpot"),
        ("bounce.s7.exacttarget.com", "Salesforce Marketing Cloud"),
        ("a1189921.bnc3.mailjet.com", "Mailjet"),
        ("MCSV.NET.", "Mailchimp"),
    ],
)
def test_subdomains_of_esp_domains_match(domain: str, esp: str) -> None:
    found = esp_for_domain(domain)
    assert found is not None and found.name == esp


def test_dkim_under_a_subdomain_of_a_signing_domain_identifies() -> None:
    match = identify(dkim=["s1.mcsv.net"])
    assert match == EspMatch("Mailchimp", None, "DKIM d=s1.mcsv.net")


@pytest.mark.parametrize(
    "domain",
    ["example.com", "evilmcsv.net", "mcsv.net.example.com", "sendgrid.net.evil.org", "net", ""],
)
def test_unrelated_domains_are_no_esp(domain: str) -> None:
    assert esp_for_domain(domain) is None
    assert identify(dkim=[domain], return_path=domain) is None


def test_only_the_listed_subdomain_matches_when_the_listing_is_below_the_registrable_domain() -> (
    None
):
    # Constant Contact bounces from in.constantcontact.com: that name is listed, not its parent.
    match = identify(return_path="in.constantcontact.com")
    assert match == EspMatch("Constant Contact", None, "Return-Path under in.constantcontact.com")
    assert identify(return_path="www.constantcontact.com") is None


# --- headers ---------------------------------------------------------------------------------


def test_header_names_compare_case_insensitively() -> None:
    match = identify(dkim=["mcsv.net"], headers=[("x-mc-user", MC_USER)])
    assert match is not None and match.customer_id == MC_USER
    match = identify(headers=[(" X-SES-OUTGOING ", "2020.02.01-54.240.27.38")])
    assert match is not None and match.esp == "Amazon SES"


def test_folded_values_are_unfolded_before_matching() -> None:
    match = identify(headers=[("X-Feedback-ID", "\r\n 4296082:abc=:def==:SG\r\n")])
    assert match == EspMatch("Twilio SendGrid", "4296082", "header X-Feedback-ID")


def test_a_generic_header_counts_only_when_its_pattern_matches() -> None:
    assert identify(headers=[("Feedback-ID", "campaign:42:list:acme")]) is None
    assert identify(headers=[("X-Mailer", "Microsoft Outlook 16.0")]) is None


def test_a_header_kept_only_for_its_customer_id_does_not_identify() -> None:
    # Anyone may write X-cid; alone it names no ESP.
    assert identify(headers=[("X-cid", "acme.12345")]) is None


HOSTILE_VALUES = [
    "",
    " ",
    "\x00\x00",
    "x" * 1_000_000,
    MC_USER + "x" * 1_000_000,
    "é" * 10_000,
    "\udcff\udcfe surrogate-escaped bytes",
    "=?utf-8?q?=E2=98=83?= \U0001f600",
    "\r\n\t\r\n",
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_header_values_never_raise(value: str) -> None:
    headers = [
        (name, value)
        for name in ("X-MC-User", "Feedback-ID", "X-Feedback-ID", "X-SG-EID", "X-Mailer", "X-cid")
    ]
    match = identify(dkim=["mcsv.net"], headers=headers)
    assert match is not None and match.esp == "Mailchimp"
    assert match.customer_id is None or len(match.customer_id) <= 128
    identify(headers=headers)


def test_an_over_long_header_value_yields_no_customer_id() -> None:
    match = identify(dkim=["mcsv.net"], headers=[("X-MC-User", "a" * 100_000)])
    assert match == EspMatch("Mailchimp", None, "DKIM d=mcsv.net")


def test_an_empty_header_is_no_fingerprint() -> None:
    assert identify(headers=[("X-SG-EID", ""), ("X-Mailgun-Sid", "   ")]) is None


@pytest.mark.parametrize("name", ["", ":", "X" * 10_000, "X-MC-User\x00", "Ünïcode", "X-SG-EID:"])
def test_hostile_header_names_never_raise(name: str) -> None:
    assert identify(headers=[(name, "value")]) is None


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "@",
        "..",
        ".",
        "a" * 10_000,
        "xn--",
        "-bad-.com",
        "例え.テスト",
        "1.2.3.4",
        "[127.0.0.1]",
    ],
)
def test_hostile_domains_never_raise(domain: str) -> None:
    assert identify(dkim=[domain], return_path=domain) is None
    assert esp_for_domain(domain) is None


# --- a malformed table is refused with a clear message ---------------------------------------


def table(*esps: dict[str, object], version: object = 1) -> dict[str, object]:
    return {"schema_version": version, "esps": list(esps)}


def esp(name: str = "Example ESP", **fields: object) -> dict[str, object]:
    return {"name": name, "signing_domains": ["esp.example"], "bounce_domains": [], **fields}


def test_a_well_formed_table_parses() -> None:
    parsed = parse_esps(
        table(esp(headers=[{"name": "X-Ex-Id", "customer_id": True, "pattern": "^(\\d+)$"}]))
    )
    assert parsed[0].name == "Example ESP"
    assert parsed[0].headers[0].pattern == re.compile("^(\\d+)$")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        (table(esp(), version=2), "schema_version 2"),
        ({"schema_version": 1, "esps": []}, "non-empty"),
        (table(esp(), esp()), "twice"),
        (table(esp(signing_domains=["ESP.example"])), "lower case"),
        (table(esp(signing_domains=["co.uk"])), "public suffix"),
        (table(esp(signing_domains=["not a domain"])), "not a valid domain"),
        (table(esp(signing_domains=[], bounce_domains=[], headers=[])), "nothing can match"),
        (table(esp("A"), esp("B")), "listed under both"),
        (table(esp("A"), esp("B", signing_domains=[], bounce_domains=["esp.example"])), "both"),
        (table(esp(colour="blue")), "unknown key"),
        (table(esp(headers=[{"name": "X-Ex", "customer_id": True}])), "one group"),
        (table(esp(headers=[{"name": "X-Ex", "customer_id": False, "pattern": "("}])), "regular"),
        (table(esp(headers=[{"name": "Feedback-ID", "customer_id": False}])), "any sender"),
        (table(esp(headers=[{"name": "Bad Name", "customer_id": False}])), "field name"),
        (
            table(
                esp("A", headers=[{"name": "X-Shared", "customer_id": False}]),
                esp(
                    "B",
                    signing_domains=["b.example"],
                    headers=[{"name": "X-Shared", "customer_id": False}],
                ),
            ),
            "another ESP",
        ),
    ],
)
def test_a_malformed_table_is_refused(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_esps(data)

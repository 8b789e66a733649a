"""The platform table: platforms that mail a merchant's customers in their own name.

The shipped table is checked as data; `parse_platforms` is fed broken tables,
one fault each, and must name the fault.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.domains import normalise_domain, organisational_domain
from canary.esp import load_esps
from canary.platforms import (
    Category,
    MerchantSource,
    Platform,
    load_platforms,
    parse_platforms,
    platform_for_domain,
    platform_for_signing_domain,
)

GOOD: dict[str, Any] = {
    "schema_version": 1,
    "comment": "test table",
    "platforms": [
        {
            "name": "Payco",
            "category": "payments",
            "from_domains": ["payco.example"],
            "signing_domains": ["payco.example"],
            "merchant": [
                {"where": "display_name", "pattern": "^(?P<merchant>.+?) via Payco$"},
                {"where": "reply_to"},
            ],
            "sources": ["https://payco.example/help/receipts"],
            "notes": "Receipts come from receipts@payco.example.",
        },
        {
            "name": "Deskly",
            "category": "support_desk",
            "from_domains": ["deskly.example", "mail.deskly-cdn.example"],
            "signing_domains": [],
            "merchant": [
                {"where": "tenant_subdomain", "under": "deskly.example"},
                {"where": "header", "name": "X-Deskly-Tenant", "pattern": "^(?P<merchant>\\w+)$"},
                {"where": "subject", "pattern": "^\\[(?P<merchant>[^\\]]+)\\]"},
                {"where": "from_local_part", "pattern": "^(?P<merchant>[a-z]+)-support$"},
            ],
            "sources": ["https://deskly.example/docs/email"],
        },
    ],
}


def broken(change: Any) -> dict[str, Any]:
    """A deep copy of GOOD with `change(table)` applied."""
    table = copy.deepcopy(GOOD)
    change(table)
    return table


def fault(table: object) -> str:
    with pytest.raises(ValueError) as caught:
        parse_platforms(table, esps=())
    return str(caught.value)


def first(table: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = table["platforms"][0]
    return entry


def second(table: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = table["platforms"][1]
    return entry


# --- the shipped table --------------------------------------------------------------------


def test_shipped_table_loads_with_at_least_45_platforms_in_at_least_8_categories() -> None:
    platforms = load_platforms()
    assert len(platforms) >= 45
    assert len({p.category for p in platforms}) >= 8
    assert len({p.name.casefold() for p in platforms}) == len(platforms)


def test_every_shipped_platform_cites_an_https_source() -> None:
    for platform in load_platforms():
        assert platform.sources, platform.name
        assert all(url.startswith("https://") for url in platform.sources), platform.name


def test_every_shipped_platform_names_its_merchant_somewhere() -> None:
    for platform in load_platforms():
        assert platform.merchant, platform.name
        for rule in platform.merchant:
            if rule.pattern is not None:
                assert "merchant" in rule.pattern.groupindex, platform.name


def test_every_shipped_domain_is_lower_case_and_below_a_public_suffix() -> None:
    for platform in load_platforms():
        for domain in platform.from_domains + platform.signing_domains:
            assert normalise_domain(domain) == domain, (platform.name, domain)
            assert organisational_domain(domain) is not None, (platform.name, domain)


def test_no_shipped_platform_domain_is_an_esp_domain() -> None:
    esp_domains = {d for esp in load_esps() for d in esp.signing_domains + esp.bounce_domains}
    for platform in load_platforms():
        for domain in platform.from_domains + platform.signing_domains:
            assert domain not in esp_domains, (platform.name, domain)


@pytest.mark.parametrize(
    "name",
    ["Stripe", "PayPal", "Square", "Shopify", "Xero", "Zendesk", "Eventbrite", "DocuSign"],
)
def test_shipped_table_covers_the_major_platforms(name: str) -> None:
    assert any(p.name == name for p in load_platforms())


def test_shipped_patterns_extract_the_merchant_from_real_shaped_values() -> None:
    def rule(platform: str, source: MerchantSource) -> Platform:
        found = next(p for p in load_platforms() if p.name == platform)
        assert any(r.source is source for r in found.merchant)
        return found

    def extract(platform: str, source: MerchantSource, value: str) -> str | None:
        for r in rule(platform, source).merchant:
            if r.source is source and r.pattern is not None:
                if match := r.pattern.search(value):
                    return match.group("merchant")
        return None

    assert extract("DocuSign", MerchantSource.DISPLAY_NAME, "Carl Painter via DocuSign") == (
        "Carl Painter"
    )
    assert extract("Patreon", MerchantSource.DISPLAY_NAME, "Victoria Scott (via Patreon)") == (
        "Victoria Scott"
    )
    assert extract("Patreon", MerchantSource.DISPLAY_NAME, "Patreon") is None
    assert (
        extract("SurveyMonkey", MerchantSource.DISPLAY_NAME, "happiness@onic.pk via SurveyMonkey")
        == "happiness@onic.pk"
    )
    assert extract("Xero", MerchantSource.SUBJECT, "Invoice INV-0099 from IT Surgery for Test") == (
        "IT Surgery"
    )
    assert (
        extract("Etsy", MerchantSource.SUBJECT, "Your Etsy Purchase from TheVinc (4106538106)")
        == "TheVinc"
    )
    assert (
        extract(
            "Toast",
            MerchantSource.SUBJECT,
            "Online Order Receipt for $32.20 at Atticus Market - 771 Orange St",
        )
        == "Atticus Market"
    )
    assert (
        extract("Squarespace", MerchantSource.FROM_LOCAL_PART, "info.yoursparkpoint.org")
        == "yoursparkpoint.org"
    )
    assert extract("Kajabi", MerchantSource.FROM_LOCAL_PART, "careerevolved=oliviagamber.com") == (
        "oliviagamber.com"
    )


# --- lookups ------------------------------------------------------------------------------


def test_a_listed_from_domain_finds_its_platform() -> None:
    hit = platform_for_domain("stripe.com")
    assert hit is not None
    assert hit[0].name == "Stripe"
    assert hit[1] == "stripe.com"


def test_a_subdomain_finds_its_platform_and_the_listed_domain() -> None:
    hit = platform_for_domain("acme.zendesk.com")
    assert hit is not None
    assert (hit[0].name, hit[1]) == ("Zendesk", "zendesk.com")
    deep = platform_for_domain("t.shopifyemail.com")
    assert deep is not None
    assert (deep[0].name, deep[1]) == ("Shopify", "shopifyemail.com")


def test_an_address_or_odd_spelling_is_accepted() -> None:
    for text in ["<support@Acme.Zendesk.COM>", "support@acme.zendesk.com", "ACME.zendesk.com."]:
        hit = platform_for_domain(text)
        assert hit is not None and hit[0].name == "Zendesk", text


@pytest.mark.parametrize(
    "domain",
    [
        "evil-stripe.com",
        "stripe.com.evil.example",
        "notstripe.com",
        "zendesk.com.attacker.example",
        "squareup.com",
        "amazon.com",
        "booking.com",
        "example.com",
    ],
)
def test_look_alikes_and_unlisted_parents_are_no_platform(domain: str) -> None:
    assert platform_for_domain(domain) is None


def test_a_listing_below_the_registrable_domain_covers_only_itself_and_below() -> None:
    hit = platform_for_domain("messaging.squareup.com")
    assert hit is not None and hit[0].name == "Square"
    assert platform_for_domain("communications.squareup.com") is None


@pytest.mark.parametrize("text", ["", " ", "@", "<>", "x" * 300, "a..b", "com", "münchen", "\x00"])
def test_hostile_input_never_raises(text: str) -> None:
    assert platform_for_domain(text) is None
    assert platform_for_signing_domain(text) is None


def test_signing_domain_lookup() -> None:
    found = platform_for_signing_domain("stripe.com")
    assert found is not None and found.name == "Stripe"
    assert platform_for_signing_domain("evil-stripe.com") is None


# --- parse_platforms ----------------------------------------------------------------------


def test_a_well_formed_table_parses() -> None:
    payco, deskly = parse_platforms(GOOD, esps=())
    assert payco.category is Category.PAYMENTS
    assert payco.from_domains == ("payco.example",)
    assert payco.merchant[0].source is MerchantSource.DISPLAY_NAME
    assert payco.merchant[0].pattern is not None
    assert payco.merchant[1].pattern is None
    assert deskly.merchant[0].under == "deskly.example"
    assert deskly.merchant[1].header == "X-Deskly-Tenant"
    assert deskly.signing_domains == ()


def test_not_an_object() -> None:
    assert "JSON object" in fault([])


def test_wrong_schema_version() -> None:
    assert "schema_version" in fault(broken(lambda t: t.update(schema_version=2)))


def test_empty_platform_list() -> None:
    assert '"platforms"' in fault(broken(lambda t: t.update(platforms=[])))


def test_unknown_top_level_key() -> None:
    assert "'extra'" in fault(broken(lambda t: t.update(extra=1)))


def test_unknown_platform_key() -> None:
    message = fault(broken(lambda t: first(t).update(website="x")))
    assert "unknown key" in message and "'website'" in message and "Payco" in message


def test_unknown_rule_key() -> None:
    message = fault(broken(lambda t: first(t)["merchant"][1].update(weight=3)))
    assert "unknown key" in message and "'weight'" in message


def test_missing_name() -> None:
    assert "name" in fault(broken(lambda t: first(t).pop("name")))


def test_bad_category() -> None:
    message = fault(broken(lambda t: first(t).update(category="banking")))
    assert "category 'banking'" in message


def test_bad_domain() -> None:
    message = fault(broken(lambda t: first(t).update(from_domains=["not a domain"])))
    assert "from_domains" in message and "not a domain" in message


def test_upper_case_domain() -> None:
    message = fault(broken(lambda t: first(t).update(from_domains=["Payco.example"])))
    assert "lower case" in message


def test_public_suffix_domain() -> None:
    message = fault(broken(lambda t: first(t).update(from_domains=["co.uk"])))
    assert "public suffix" in message and "'co.uk'" in message


def test_no_from_domain() -> None:
    assert "from_domain" in fault(broken(lambda t: first(t).update(from_domains=[])))


def test_domain_listed_twice_in_one_list() -> None:
    message = fault(
        broken(lambda t: first(t).update(from_domains=["payco.example", "payco.example"]))
    )
    assert "listed twice" in message


def test_nested_domains_in_one_list() -> None:
    message = fault(
        broken(lambda t: first(t).update(from_domains=["payco.example", "mail.payco.example"]))
    )
    assert "overlap" in message


def test_domain_under_two_platforms() -> None:
    message = fault(broken(lambda t: second(t).update(signing_domains=["payco.example"])))
    assert "'payco.example'" in message and "Deskly" in message and "Payco" in message


def test_subdomain_of_another_platforms_domain() -> None:
    message = fault(broken(lambda t: second(t).update(signing_domains=["mx.payco.example"])))
    assert "overlaps" in message and "Payco" in message


def test_platform_listed_twice() -> None:
    message = fault(broken(lambda t: second(t).update(name="PAYCO")))
    assert "twice" in message


def test_pattern_that_is_not_a_regex() -> None:
    message = fault(broken(lambda t: first(t)["merchant"][0].update(pattern="^(?P<merchant>.+")))
    assert "not a regular expression" in message


def test_pattern_without_the_merchant_group() -> None:
    message = fault(broken(lambda t: first(t)["merchant"][0].update(pattern="^(.+) via Payco$")))
    assert "'merchant'" in message


def test_pattern_with_another_named_group() -> None:
    message = fault(
        broken(
            lambda t: first(t)["merchant"][0].update(
                pattern="^(?P<merchant>.+) via (?P<platform>Payco)$"
            )
        )
    )
    assert "'merchant'" in message and "platform" in message


@pytest.mark.parametrize("source", ["subject", "from_local_part", "header"])
def test_a_where_that_needs_a_pattern_without_one(source: str) -> None:
    def change(t: dict[str, Any]) -> None:
        rule: dict[str, Any] = {"where": source}
        if source == "header":
            rule["name"] = "X-Payco-Merchant"
        first(t)["merchant"].append(rule)

    message = fault(broken(change))
    assert "needs a pattern" in message and source in message


@pytest.mark.parametrize("source", ["reply_to", "tenant_subdomain"])
def test_a_where_that_takes_no_pattern_with_one(source: str) -> None:
    message = fault(
        broken(
            lambda t: first(t)["merchant"].append(
                {"where": source, "pattern": "^(?P<merchant>.+)$"}
            )
        )
    )
    assert "takes no pattern" in message


def test_bad_where() -> None:
    message = fault(broken(lambda t: first(t)["merchant"].append({"where": "body"})))
    assert "where 'body'" in message


def test_header_rule_without_a_header_name() -> None:
    message = fault(broken(lambda t: second(t)["merchant"][1].pop("name")))
    assert "header field name" in message


def test_header_name_on_another_rule() -> None:
    message = fault(broken(lambda t: first(t)["merchant"][1].update(name="Reply-To")))
    assert "only a header rule" in message


def test_under_that_is_not_a_from_domain() -> None:
    message = fault(broken(lambda t: second(t)["merchant"][0].update(under="other.example")))
    assert "under 'other.example'" in message


def test_under_on_another_rule() -> None:
    message = fault(broken(lambda t: first(t)["merchant"][1].update(under="payco.example")))
    assert "only a tenant_subdomain rule" in message


def test_no_merchant_rules() -> None:
    assert "merchant" in fault(broken(lambda t: first(t).update(merchant=[])))


def test_missing_sources() -> None:
    message = fault(broken(lambda t: first(t).pop("sources")))
    assert "source" in message and "Payco" in message


def test_empty_sources() -> None:
    assert "source" in fault(broken(lambda t: first(t).update(sources=[])))


@pytest.mark.parametrize(
    "url", ["http://payco.example/help", "ftp://payco.example/x", "payco.example/help", "https://"]
)
def test_non_https_source(url: str) -> None:
    message = fault(broken(lambda t: first(t).update(sources=[url])))
    assert "https" in message and repr(url) in message


def test_notes_must_be_text() -> None:
    assert "notes" in fault(broken(lambda t: first(t).update(notes=["x"])))


def test_a_domain_of_an_esp_is_refused() -> None:
    esp = next(e for e in load_esps() if e.name == "Mailchimp")
    table = broken(lambda t: second(t).update(signing_domains=["mcsv.net"]))
    with pytest.raises(ValueError) as caught:
        parse_platforms(table, esps=[esp])
    message = str(caught.value)
    assert "'mcsv.net'" in message and "ESP" in message and "Mailchimp" in message


def test_a_subdomain_of_an_esp_domain_is_refused() -> None:
    esp = next(e for e in load_esps() if e.name == "Mailchimp")
    table = broken(lambda t: second(t).update(signing_domains=["mail7.mcsv.net"]))
    with pytest.raises(ValueError) as caught:
        parse_platforms(table, esps=[esp])
    assert "Mailchimp" in str(caught.value)


def test_the_shipped_esp_table_is_the_default() -> None:
    table = broken(lambda t: first(t).update(from_domains=["sendgrid.net"]))
    with pytest.raises(ValueError) as caught:
        parse_platforms(table)
    assert "SendGrid" in str(caught.value)

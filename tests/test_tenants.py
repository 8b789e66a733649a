"""The shared-domain table and `sender_identity`: who the sender is on a shared domain."""

from __future__ import annotations

import pytest

from canary.domains import normalise_domain, organisational_domain
from canary.tenants import (
    SharedDomain,
    TenantKind,
    load_shared_domains,
    parse_tenants,
    sender_identity,
    shared_domain,
)

SOURCE = "https://example.org/about-our-domains"


def table(*entries: dict[str, object], version: object = 1) -> dict[str, object]:
    return {"schema_version": version, "comment": "test", "domains": list(entries)}


def entry(domain: str = "mail.example", **fields: object) -> dict[str, object]:
    return {"domain": domain, "kind": "mailbox", "operator": "Example", "source": SOURCE, **fields}


# --- the shipped table -----------------------------------------------------------------------


def test_table_loads_with_at_least_120_entries_of_all_three_kinds() -> None:
    domains = load_shared_domains()
    assert len(domains) >= 120
    assert {shared.kind for shared in domains.values()} == set(TenantKind)


def test_every_listed_domain_is_a_lower_case_registrable_domain() -> None:
    for domain, shared in load_shared_domains().items():
        assert shared.domain == domain
        assert normalise_domain(domain) == domain
        assert organisational_domain(domain) == domain


def test_no_listed_domain_is_already_split_by_the_psl_private_section() -> None:
    # Split would make `probe.<domain>` its own registrable domain.
    for domain in load_shared_domains():
        assert organisational_domain(f"probe.{domain}") == domain, domain


def test_gmail_is_a_mailbox_provider() -> None:
    assert shared_domain("gmail.com") == SharedDomain(
        "gmail.com", TenantKind.MAILBOX, "Google (Gmail)"
    )


def test_googlegroups_is_a_group_host() -> None:
    shared = shared_domain("googlegroups.com")
    assert shared is not None and shared.kind is TenantKind.GROUP


def test_onmicrosoft_is_a_cloud_tenant_domain() -> None:
    shared = shared_domain("onmicrosoft.com")
    assert shared is not None and shared.kind is TenantKind.CLOUD_TENANT


def test_a_look_alike_is_not_shared() -> None:
    assert shared_domain("gmail-support.com") is None
    assert shared_domain("gmail.co") is None
    assert sender_identity("help@gmail-support.com") == "gmail-support.com"


def test_a_host_under_a_shared_domain_finds_its_entry() -> None:
    shared = shared_domain("Mail.Yahoo.CO.UK.")
    assert shared is not None and shared.domain == "yahoo.co.uk"


def test_a_public_suffix_or_invalid_name_is_not_shared() -> None:
    assert shared_domain("co.uk") is None
    assert shared_domain("herokuapp.com") is None
    assert shared_domain("not a domain") is None


def test_the_table_cannot_be_changed_by_a_caller() -> None:
    with pytest.raises(TypeError):
        load_shared_domains()["acme.example"] = SharedDomain(  # type: ignore[index]
            "acme.example", TenantKind.MAILBOX, "Acme"
        )


# --- sender_identity ---------------------------------------------------------------------------


def test_an_ordinary_sender_is_its_registrable_domain() -> None:
    assert sender_identity("news@mail.acme.co.uk") == "acme.co.uk"


def test_two_gmail_users_are_two_senders() -> None:
    assert sender_identity("Jane.Doe@GMail.com") == "jane.doe@gmail.com"
    assert sender_identity("<john@gmail.com>") == "john@gmail.com"


def test_a_psl_private_tenant_is_its_own_registrable_domain() -> None:
    assert sender_identity("app@shop.herokuapp.com") == "shop.herokuapp.com"


def test_a_cloud_tenant_is_the_label_under_the_shared_domain() -> None:
    assert sender_identity("it@contoso.onmicrosoft.com") == "contoso.onmicrosoft.com"
    assert sender_identity("it@eu.contoso.onmicrosoft.com") == "contoso.onmicrosoft.com"
    assert sender_identity("a@fabrikam.onmicrosoft.com") != sender_identity(
        "a@contoso.onmicrosoft.com"
    )


def test_an_address_at_a_cloud_tenant_domain_itself_is_the_full_address() -> None:
    assert sender_identity("Acme-News@substack.com") == "acme-news@substack.com"
    assert sender_identity("acme-news@substack.com") != sender_identity("other@substack.com")


def test_a_group_is_its_list_id_under_the_group_domain() -> None:
    list_id = "Hikers of the North <hikers.groups.io>"
    assert sender_identity("jane=example.org@groups.io", list_id) == "hikers.groups.io"


def test_a_group_without_a_list_id_is_the_group_address() -> None:
    assert sender_identity("hikers@googlegroups.com") == "hikers@googlegroups.com"


def test_a_list_id_under_another_domain_is_ignored() -> None:
    forged = "<anything.acme.example>"
    assert sender_identity("hikers@googlegroups.com", forged) == "hikers@googlegroups.com"
    # Nor does a List-Id give a mailbox or an ordinary sender another identity.
    assert sender_identity("jane@gmail.com", "<x.gmail.com>") == "jane@gmail.com"
    assert sender_identity("news@acme.co.uk", "<x.googlegroups.com>") == "acme.co.uk"


@pytest.mark.parametrize(
    "address",
    ["", "no-at-sign", "@gmail.com", "jane@", "jane@co.uk", "jane@not a host", "ja\nne@gmail.com"],
)
def test_what_is_not_an_address_has_no_identity(address: str) -> None:
    assert sender_identity(address) is None


# --- validation: one fault per test ----------------------------------------------------------


def test_a_well_formed_table_parses() -> None:
    parsed = parse_tenants(table(entry(), entry("lists.example", kind="group")))
    assert parsed["mail.example"] == SharedDomain("mail.example", TenantKind.MAILBOX, "Example")
    assert parsed["lists.example"].kind is TenantKind.GROUP


def test_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_tenants([])


def test_refuses_another_schema_version() -> None:
    with pytest.raises(ValueError, match="schema_version 2"):
        parse_tenants(table(entry(), version=2))


def test_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        parse_tenants(table())


def test_refuses_an_unknown_top_level_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key.*'extra'"):
        parse_tenants({**table(entry()), "extra": 1})


def test_refuses_an_unknown_entry_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key.*'colour'"):
        parse_tenants(table(entry(colour="blue")))


def test_refuses_a_bad_kind() -> None:
    with pytest.raises(
        ValueError, match="kind 'webmail' is not one of mailbox, group, cloud_tenant"
    ):
        parse_tenants(table(entry(kind="webmail")))


def test_refuses_a_domain_that_is_not_lower_case() -> None:
    with pytest.raises(ValueError, match="lower case, A-labels"):
        parse_tenants(table(entry("Mail.Example")))


def test_refuses_an_invalid_domain() -> None:
    with pytest.raises(ValueError, match="not a valid domain"):
        parse_tenants(table(entry("not a domain")))


def test_refuses_a_subdomain() -> None:
    with pytest.raises(
        ValueError, match=r"not a registrable domain; it is under 'salesforce\.com'"
    ):
        parse_tenants(table(entry("my.salesforce.com", kind="cloud_tenant")))


def test_refuses_a_public_suffix() -> None:
    with pytest.raises(ValueError, match="not a registrable domain; it is a public suffix"):
        parse_tenants(table(entry("co.uk")))


def test_refuses_a_domain_the_psl_private_section_already_splits() -> None:
    with pytest.raises(ValueError, match=r"'herokuapp\.com' is not a registrable domain"):
        parse_tenants(table(entry("herokuapp.com", kind="cloud_tenant")))


def test_refuses_a_domain_listed_twice() -> None:
    with pytest.raises(ValueError, match=r"lists 'mail\.example' twice"):
        parse_tenants(table(entry(), entry(kind="group")))


def test_refuses_a_missing_source() -> None:
    bare = entry()
    del bare["source"]
    with pytest.raises(ValueError, match="needs a source, an https URL"):
        parse_tenants(table(bare))


@pytest.mark.parametrize(
    "source", ["http://example.org/domains", "example.org/domains", "https://", "https://a b/", 7]
)
def test_refuses_a_source_that_is_not_an_https_url(source: object) -> None:
    with pytest.raises(ValueError, match="needs a source, an https URL"):
        parse_tenants(table(entry(source=source)))


def test_refuses_a_missing_operator() -> None:
    with pytest.raises(ValueError, match="needs an operator"):
        parse_tenants(table(entry(operator=" ")))

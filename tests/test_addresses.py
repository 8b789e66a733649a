"""The pure rules of `canary.addresses`: whose addresses, delivered where, received when, and
the address → company mapping files of `canary adopt --from`.

Plain function calls: no home, no database, no network.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from canary.addresses import (
    AddressMapping,
    AddressPatterns,
    InvalidMapping,
    MappingRow,
    Receipt,
    SubAddress,
    mapping_csv,
    mapping_rows,
    normalise_address,
    parse_sub_address,
    patterns_toml,
    read_patterns,
    receipt,
    recipients,
)
from canary.errors import InvalidValue

PATTERNS = read_patterns({
    "catch_all": ["Me.Example"],
    "sub_addresses": ["me@mailbox.example/+-", "you@other.example"],
})


# --- patterns ------------------------------------------------------------------------------


def test_read_patterns_normalises_domains_and_separators() -> None:
    assert PATTERNS == AddressPatterns(
        ("me.example",),
        (SubAddress("me", "mailbox.example", ("+", "-")),
         SubAddress("you", "other.example", ("+",))),
    )


@pytest.mark.parametrize("address", [
    "shop@me.example",  # any local part of a catch-all domain
    "megamart.2021@me.example",
    "me+shop@mailbox.example",  # + sub-address
    "me-shop@mailbox.example",  # - sub-address, where configured
    "me+shop+extra@mailbox.example",
    "you+x@other.example",
])
def test_owned_addresses(address: str) -> None:
    assert PATTERNS.owns(address)


@pytest.mark.parametrize("address", [
    "x@elsewhere.example",  # a domain that is not the person's
    "shop@sub.me.example",  # a subdomain of the catch-all is another domain
    "shop@me.example.evil.example",
    "meshop@mailbox.example",  # no separator
    "me@mailbox.example",  # the base address: the person's own mailbox, given to no one
    "you@other.example",
    "me+@mailbox.example",  # a separator and nothing after it
    "me-@mailbox.example",
    "mex+shop@mailbox.example",  # another mailbox at the same provider
    "other+shop@mailbox.example",
    "you-x@other.example",  # only + is configured for this base
    "me+shop@other.example",  # the base's local part at another domain
    "@me.example",
    "me.example",
])
def test_addresses_not_owned(address: str) -> None:
    assert not PATTERNS.owns(address)


def test_no_patterns_own_nothing() -> None:
    nothing = read_patterns(None)
    assert nothing == AddressPatterns()
    assert not nothing.owns("shop@me.example")


@pytest.mark.parametrize(("text", "expected"), [
    ("me@mailbox.example", SubAddress("me", "mailbox.example", ("+",))),
    ("Me@Mailbox.Example/-", SubAddress("me", "mailbox.example", ("-",))),
    ("me@mailbox.example/+-+", SubAddress("me", "mailbox.example", ("+", "-"))),
    ("me@mailbox.example/", SubAddress("me", "mailbox.example", ("+",))),
])
def test_parse_sub_address(text: str, expected: SubAddress) -> None:
    assert parse_sub_address(text) == expected
    assert expected.address == "me@mailbox.example"


@pytest.mark.parametrize(("table", "mentions"), [
    ([], "[addresses] must be a table"),
    ("me.example", "[addresses] must be a table"),
    ({"catch_all": "me.example"}, "addresses.catch_all must be a list"),
    ({"catch_all": [1]}, "addresses.catch_all must be a list"),
    ({"catch_all": ["not a domain"]}, "addresses.catch_all: 'not a domain'"),
    ({"sub_addresses": "me@mailbox.example"}, "addresses.sub_addresses must be a list"),
    ({"sub_addresses": [["me@mailbox.example"]]}, "addresses.sub_addresses must be a list"),
    ({"sub_addresses": ["nobody"]}, "'nobody' is not an address"),
    ({"sub_addresses": ["me@mailbox.example/*"]}, "the separators may be + and -"),
])
def test_read_patterns_says_what_is_wrong(table: object, mentions: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        read_patterns(table)
    assert mentions in str(raised.value)


def test_patterns_toml_reads_back() -> None:
    import tomllib

    text = "\n".join(patterns_toml(PATTERNS))
    assert read_patterns(tomllib.loads(text)["addresses"]) == PATTERNS


# --- addresses and recipients --------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Shop@Me.Example", "shop@me.example"),
    ('"MegaMart" <MegaMart@ME.example>', "megamart@me.example"),
    ("  me+Shop@mailbox.example.  ", "me+shop@mailbox.example"),
    ("not an address", None),
    ("nobody@", None),
    ("@me.example", None),
    ("x" * 65 + "@me.example", None),
    ("a b@me.example", None),
    ("shop@not a domain", None),
])
def test_normalise_address(text: str, expected: str | None) -> None:
    assert normalise_address(text) == expected


def test_recipients_envelope_headers_first_then_to_and_cc_each_once() -> None:
    headers = [
        ("Subject", "me+noise@mailbox.example"),  # not an address header
        ("To", '"Shop" <SHOP@Me.Example>, other@elsewhere.example'),
        ("Cc", "shop@me.example, cc@elsewhere.example"),
        ("Delivered-To", "me+shop@mailbox.example"),
        ("X-Original-To", "Orig@ME.example"),
        ("envelope-to", "envelope@me.example"),
        ("X-Envelope-To", "<xenv@me.example>"),
        ("Reply-To", "reply@elsewhere.example"),
        ("Delivered-To", "me+shop@mailbox.example"),
    ]
    assert recipients(headers) == [
        "me+shop@mailbox.example", "orig@me.example", "envelope@me.example",
        "xenv@me.example", "shop@me.example", "other@elsewhere.example",
        "cc@elsewhere.example",
    ]


def test_recipients_skips_what_is_no_address() -> None:
    headers = [("To", "undisclosed-recipients:;"), ("Cc", "nobody"), ("To", "")]
    assert recipients(headers) == []


# --- receipt -------------------------------------------------------------------------------


def test_receipt_is_the_topmost_received_with_its_client() -> None:
    headers = [
        ("Delivered-To", "shop@me.example"),
        ("Received", "from mail.sender.example (mail.sender.example [192.0.2.7])\r\n"
                     "        by mx.provider.example with ESMTPS id 4Tx;\r\n"
                     "        Tue, 2 Jan 2024 10:00:00 +0100 (CET)"),
        ("Received", "from localhost (localhost [127.0.0.1]) by mail.sender.example; "
                     "Tue, 2 Jan 2024 08:59:00 +0000"),
        ("Date", "Tue, 2 Jan 2024 08:55:00 +0000"),
    ]
    assert receipt(headers) == Receipt(datetime(2024, 1, 2, 9, 0, tzinfo=UTC), False,
                                       "192.0.2.7", "mail.sender.example")


def test_receipt_of_an_internal_hop_has_no_client() -> None:
    headers = [("Received", "by 2002:a05:6000:1:b0:33e with SMTP id x;\r\n"
                            "        Tue, 2 Jan 2024 10:00:00 -0800 (PST)")]
    assert receipt(headers) == Receipt(datetime(2024, 1, 2, 18, 0, tzinfo=UTC), False)


def test_receipt_reads_ipv6_clients() -> None:
    headers = [("Received", "from mx.sender.example ([IPv6:2001:db8::25]) by mx.provider."
                            "example; Tue, 2 Jan 2024 10:00:00 +0000")]
    found = receipt(headers)
    assert (found.peer_ip, found.helo, found.estimated) == ("2001:db8::25",
                                                           "mx.sender.example", False)


def test_receipt_skips_a_received_without_date() -> None:
    headers = [("Received", "from nowhere by mx.provider.example"),
               ("Received", "from a.example by b.example; Mon, 1 Jan 2024 12:00:00 +0000")]
    assert receipt(headers).at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("received", [[], [("Received", "from x by y; no date at all")]])
def test_receipt_falls_back_to_the_date_header_flagged_as_estimated(
        received: list[tuple[str, str]]) -> None:
    headers = [*received, ("Date", "Sun, 31 Dec 2023 23:00:00 -0100")]
    assert receipt(headers) == Receipt(datetime(2024, 1, 1, 0, 0, tzinfo=UTC), True)


def test_receipt_without_any_date_is_unknown_and_estimated() -> None:
    assert receipt([("Date", "yesterday")]) == Receipt(None, True)
    assert receipt([]) == Receipt(None, True)


def test_receipt_of_a_date_without_zone_is_utc() -> None:
    found = receipt([("Date", "Tue, 2 Jan 2024 10:00:00 -0000")])
    assert found.at == datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


# --- mapping files -------------------------------------------------------------------------


def test_mapping_csv_with_header_row() -> None:
    text = (" Address , Company ,Domains,issued,note\n"
            " Shop@Me.Example , MegaMart , megamart.example;mm-mail.example,2021-02-01,card\n"
            "me+shoes@mailbox.example,\"Shoe Shop, Ltd\",\"shoeshop.example, shoes.example\",,\n"
            "other@me.example,,,,\n"
            "\n"
            ",Orphan,,,\n")
    assert mapping_rows(text, "map.csv") == AddressMapping(
        rows=[
            MappingRow("shop@me.example", "MegaMart", ("megamart.example", "mm-mail.example"),
                       datetime(2021, 2, 1, tzinfo=UTC), "card"),
            MappingRow("me+shoes@mailbox.example", "Shoe Shop, Ltd",
                       ("shoeshop.example", "shoes.example")),
        ],
        unassigned=["other@me.example"],
    )


def test_mapping_toml() -> None:
    text = """
[[alias]]
address = "megamart@me.example"
company = "MegaMart"
domains = ["megamart.example"]
issued = 2021-02-01
note = "loyalty card"

[[alias]]
address = "me-travel@mailbox.example"
company = "TravelCo"
domains = "travelco.example"
issued = 2021-03-10T10:00:00+02:00

[[alias]]
address = "unsure@me.example"
"""
    assert mapping_rows(text, "map.TOML") == AddressMapping(
        rows=[
            MappingRow("megamart@me.example", "MegaMart", ("megamart.example",),
                       datetime(2021, 2, 1, tzinfo=UTC), "loyalty card"),
            MappingRow("me-travel@mailbox.example", "TravelCo", ("travelco.example",),
                       datetime(2021, 3, 10, 8, 0, tzinfo=UTC)),
        ],
        unassigned=["unsure@me.example"],
    )


@pytest.mark.parametrize(("text", "name", "mentions"), [
    ("", "map.csv", "map.csv: the first line must name the columns"),
    ("shop@me.example,MegaMart\n", "map.csv", "map.csv: the first line must name the columns"),
    ("company,domains\nMegaMart,megamart.example\n", "map.csv", "the first line must name"),
    ("address,company\nshop@me.example,MegaMart\nnot-an-address,Shoe Shop\n", "map.csv",
     "map.csv line 3: 'not-an-address' is not an address"),
    ("address,company,issued\nshop@me.example,MegaMart,2021-13-01\n", "map.csv",
     "map.csv line 2: '2021-13-01' is not a date; write YYYY-MM-DD"),
    ("address,company,issued\nshop@me.example,MegaMart,last spring\n", "map.csv",
     "'last spring' is not a date"),
    ("[[alias]\n", "map.toml", "map.toml is not valid TOML"),
    ("alias = 3\n", "map.toml", "map.toml: write one [[alias]] table per"),
    ("alias = [1, 2]\n", "map.toml", "write one [[alias]] table per"),
    ('[[alias]]\naddress = "shop@me.example"\ncompany = "M"\n[[alias]]\naddress = "x"\n'
     'company = "N"\n', "map.toml", "map.toml [[alias]] #2: 'x' is not an address"),
    ('[[alias]]\naddress = "shop@me.example"\ncompany = "M"\ndomains = 5\n', "map.toml",
     "map.toml [[alias]] #1: domains must be a list of domains"),
    ('[[alias]]\naddress = "shop@me.example"\ncompany = "M"\nissued = "soon"\n', "map.toml",
     "'soon' is not a date"),
])
def test_mapping_errors_say_where_and_why(text: str, name: str, mentions: str) -> None:
    with pytest.raises(InvalidMapping) as raised:
        mapping_rows(text, name)
    assert mentions in str(raised.value)
    assert isinstance(raised.value, InvalidValue)


def test_mapping_csv_reads_back() -> None:
    rows = [
        ("megamart@me.example", "MegaMart", ("megamart.example",),
         datetime(2021, 2, 1, 13, 45, tzinfo=UTC)),
        ("me+shoes@mailbox.example", 'Shoe "Shop", Ltd', ("shoeshop.example", "shoes.example"),
         None),
        ("me-travel@mailbox.example", "", (), datetime(2021, 3, 10, tzinfo=UTC)),
    ]
    text = mapping_csv(rows)
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["address", "company", "domains", "issued", "note"]
    assert table[1] == ["megamart@me.example", "MegaMart", "megamart.example", "2021-02-01", ""]
    assert mapping_rows(text, "map.csv") == AddressMapping(
        rows=[
            # The mapping keeps the day the address was given, not the time of day.
            MappingRow("megamart@me.example", "MegaMart", ("megamart.example",),
                       datetime(2021, 2, 1, tzinfo=UTC)),
            MappingRow("me+shoes@mailbox.example", 'Shoe "Shop", Ltd',
                       ("shoeshop.example", "shoes.example")),
        ],
        unassigned=["me-travel@mailbox.example"],
    )


def test_an_empty_mapping_csv_is_only_its_header_row() -> None:
    text = mapping_csv([])
    assert text == "address,company,domains,issued,note\n"
    assert mapping_rows(text, "map.csv") == AddressMapping()

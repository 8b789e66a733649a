"""The HTML breach report: self-contained, escaped, and rendered by a real browser.

Unit tests build `CompanyReport` values with `company_report` and read the
document back with the standard library's HTML parser. The browser tests
render the report of a real demo run in headless Chromium (Debian's
`chromium` and `chromium-driver`, driven by selenium) and print it to PDF.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from commands import build_demo_home
from factories import dkim

from canary.authentication import AuthenticatedBy
from canary.consent import Consent, FindingKind, Frequency
from canary.relation import Relation
from canary.report import AliasView, CompanyFacts, CompanyReport, Sighting, company_report
from cli.render.html import render_html
from data.home import open_home
from data.reporting import build_reports

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
GENERATED = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHARED_RED = "#b3261e"
"""The shared verdict's badge and the third party's bars (`cli.export_html`)."""


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def seen(n: float, relation: Relation | None, org: str | None, slug: str = "acme", *,
         subject: str = "Hello", message_id: str | None = None,
         authenticated_by: AuthenticatedBy | None = None,
         marketing: bool | None = None) -> Sighting:
    return Sighting(received_at=day(n), alias_slug=slug, relation=relation, sender_org=org,
                    from_address=f"news@{org}" if org else None, subject=subject,
                    message_id=message_id or f"<{n}@{org}>", sha256=f"{int(n * 1000):064x}",
                    authenticated_by=authenticated_by, marketing=marketing)


def facts(name: str, *sightings: Sighting, note: str | None = None,
          aliases: tuple[AliasView, ...] = (), consent: tuple[Consent, ...] = ()) -> CompanyFacts:
    slug = name.lower().replace(" ", "-")
    return CompanyFacts(
        name=name, slug=slug, note=note, domains=(f"{slug}.example",),
        aliases=aliases or (AliasView(f"{slug}.abcdefgh@canary.example.org", slug, day(0),
                                      len(sightings)),),
        sightings=sightings, consent=consent,
    )


def shared_report() -> CompanyReport:
    """MegaMart: weekly newsletters through its ESP, then an authenticated marketer."""
    own = [seen(n, Relation.PROCESSOR, "megamart.example", "megamart",
                authenticated_by=dkim("sendgrid.net"), marketing=True) for n in (2, 9, 16, 23)]
    marketer = [seen(n, Relation.THIRD_PARTY, "dealblaster.example", "megamart",
                     authenticated_by=dkim("dealblaster.example")) for n in (24.8, 27.8, 30.8)]
    return company_report(facts("MegaMart", *own, *marketer, note="loyalty card"))


def leaked_report() -> CompanyReport:
    """Acme: opted out, still mails too often; hostile spam; a retired alias; one pending."""
    retired = AliasView("acme.old@canary.example.org", "acme", day(0), 9, day(30), "reject")
    current = AliasView("acme.new@canary.example.org", "acme-2", day(30), 2)
    consent = (Consent(day(0), marketing=True, frequency=Frequency.WEEKLY),
               Consent(day(12), marketing=True, frequency=Frequency.WEEKLY, opted_out=True))
    own = [seen(n, Relation.FIRST_PARTY, "acme.example", marketing=True,
                authenticated_by=dkim("acme.example"), subject=f"Deal {n}")
           for n in (1, 2, 3, 4, 5, 6, 25, 28)]
    spam = seen(31, Relation.UNVERIFIED, "prize.example", "acme-2", subject=HOSTILE,
                message_id=f"<{HOSTILE}@prize.example>")
    pending = seen(33, None, "later.example", "acme-2")
    return company_report(facts("Acme", *own, spam, pending, aliases=(retired, current),
                                consent=consent))


def quiet_report() -> CompanyReport:
    return company_report(facts("Northwind Library"))


@dataclass
class Company:
    id: str
    verdict: str
    text: list[str] = field(default_factory=list)
    timelines: int = 0
    series: set[str] = field(default_factory=set)


class Outline(HTMLParser):
    """What a test needs from the document: tags seen, URLs, and each company section."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str]] = []
        self.companies: list[Company] = []
        self.text: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.text.append(" ")  # table cells and list items read apart, as on screen
        values = {name: value or "" for name, value in attrs}
        self.attributes.extend(values.items())
        if tag == "section" and "company" in values.get("class", "").split():
            self.companies.append(Company(values["id"], values["data-verdict"]))
            self._depth = 1
        elif self._depth and tag == "section":
            self._depth += 1
        if self._depth and tag == "svg" and "timeline" in values.get("class", "").split():
            self.companies[-1].timelines += 1
        if self._depth and tag == "rect" and "data-series" in values:
            self.companies[-1].series.add(values["data-series"])

    def handle_endtag(self, tag: str) -> None:
        self.text.append(" ")
        if self._depth and tag == "section":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._depth:
            self.companies[-1].text.append(data)


def plain(parsed: Outline) -> str:
    """The document's text as a reader sees it: whitespace runs collapsed."""
    return " ".join("".join(parsed.text).split())


def outline(document: str) -> Outline:
    parser = Outline()
    parser.feed(document)
    parser.close()
    return parser


# --- The document, from plain values ---------------------------------------------------


def test_the_document_is_self_contained_and_scriptless() -> None:
    document = render_html([shared_report(), leaked_report(), quiet_report()], GENERATED, 2)
    parsed = outline(document)
    assert document.startswith("<!DOCTYPE html>")
    assert "script" not in parsed.tags and "<script" not in document.lower()
    assert {"link", "img", "iframe", "object", "embed"}.isdisjoint(parsed.tags)
    lowered = document.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert "url(" not in lowered and "@import" not in lowered
    assert not [(n, v) for n, v in parsed.attributes if n in ("src", "href") and
                not v.startswith("#")], "only in-page links are allowed"
    assert "style" in parsed.tags


def test_each_company_has_its_verdict_and_a_timeline_in_the_order_given() -> None:
    reports = [shared_report(), leaked_report(), quiet_report()]
    companies = outline(render_html(reports, GENERATED, 0)).companies
    assert [(c.id, c.verdict) for c in companies] == [
        ("company-megamart", "shared"), ("company-acme", "leaked"),
        ("company-northwind-library", "quiet"),
    ]
    for company in companies:
        assert company.verdict.upper() in "".join(company.text).upper()
        assert company.timelines == 1
    megamart, acme, library = companies
    # Own mail and unexpected mail both plotted, in their own colours.
    assert {"processor", "third_party"} <= megamart.series
    assert {"first_party", "unverified", "pending"} <= acme.series
    assert library.series == set()
    assert "No mail yet" in "".join(library.text)


def test_shared_company_shows_its_evidence() -> None:
    text = plain(outline(render_html([shared_report()], GENERATED, 0)))
    for expected in ("dealblaster.example", "third party", "DKIM d=dealblaster.example",
                     "<24.8@dealblaster.example>", f"{24800:064x}",
                     "DKIM-authenticated as itself",
                     "24 days", "2026-01-30", "2026-02-05"):
        assert expected in text, expected


def test_timeline_bars_name_their_day_and_senders() -> None:
    text = plain(outline(render_html([shared_report()], GENERATED, 0)))
    assert "2026-01-30: 1 message (unexpected) 1 third party: dealblaster.example" in text
    assert "2026-01-07: 1 message (own mail) 1 processor: megamart.example" in text
    assert "issued 2026-01-05" in text


def test_a_sender_on_several_companies_is_listed_as_a_broker() -> None:
    def shop(name: str, n: float) -> CompanyReport:
        slug = name.lower().replace(" ", "-")
        return company_report(facts(name, seen(n, Relation.THIRD_PARTY, "broker.example", slug,
                                               authenticated_by=dkim("broker.example"))))

    document = render_html([shop("Shop One", 3), shop("Shop Two", 5), quiet_report()],
                           GENERATED, 4)
    assert 'class="brokers"' in document
    text = plain(outline(document))
    assert "Likely list brokers" in text and "broker.example Shop One, Shop Two" in text
    assert "4 probes" in text
    assert 'class="brokers"' not in render_html([shared_report()], GENERATED, 0)


def test_consent_findings_and_a_retired_alias_are_reported() -> None:
    report = leaked_report()
    assert {f.kind for f in report.findings} == {FindingKind.AFTER_OPTOUT,
                                                  FindingKind.OVER_FREQUENCY}
    document = render_html([report], GENERATED, 0)
    text = plain(outline(document))
    assert 'data-kind="after_optout"' in document and 'data-kind="over_frequency"' in document
    for finding in report.findings:
        assert finding.summary in text
        for mail in finding.messages:
            assert mail.message_id is not None and mail.message_id in text
    over = next(f for f in report.findings if f.kind is FindingKind.OVER_FREQUENCY)
    assert over.observed and over.observed in text and over.agreed and over.agreed in text
    assert "opted out yes" in text
    assert "retired 2026-02-04 (mail now refused with 550)" in text
    assert "acme.old@canary.example.org" in text and "acme.new@canary.example.org" in text


def test_hostile_message_text_is_escaped() -> None:
    spam = seen(3, Relation.THIRD_PARTY, f"evil{HOSTILE}.example", subject=HOSTILE,
                message_id=f"<{HOSTILE}>", authenticated_by=dkim(HOSTILE))
    bidi = seen(4, Relation.UNVERIFIED, "gro.\u202eevil.example", subject="x\x00\udcffy")
    report = company_report(facts(f"Acme {HOSTILE}", spam, bidi, note=f"note {HOSTILE}"))
    document = render_html([report], GENERATED, 0)
    parsed = outline(document)
    assert "script" not in parsed.tags
    assert HOSTILE not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    # The subject (in the evidence and the timeline's tooltip) and the Message-ID come back
    # as the text they were, not as markup.
    text = "".join(parsed.text)
    assert text.count(HOSTILE) >= 5
    # Bidi controls are shown, not obeyed; control characters and stray surrogates dropped.
    assert "\u202e" not in document and "<U+202E>" in text
    assert "\x00" not in document and "\udcff" not in document
    document.encode("utf-8")


def test_an_empty_report_renders() -> None:
    document = render_html([], GENERATED, 0)
    parsed = outline(document)
    assert parsed.companies == []
    assert "No companies yet" in "".join(parsed.text)
    assert "2026-03-01 12:30 UTC" in "".join(parsed.text)


def test_the_same_input_gives_the_same_document() -> None:
    reports = [shared_report(), leaked_report(), quiet_report()]
    assert render_html(reports, GENERATED, 1) == render_html(list(reports), GENERATED, 1)


def test_long_histories_are_plotted_per_week() -> None:
    sightings = [seen(n, Relation.FIRST_PARTY, "acme.example") for n in range(0, 400, 5)]
    document = render_html([company_report(facts("Acme", *sightings))], day(400), 0)
    assert 'data-bin="week"' in document
    short = render_html([shared_report()], GENERATED, 0)
    assert 'data-bin="day"' in short


# --- In a real browser ----------------------------------------------------------------------


def _require_browser() -> None:
    """Skip when Chromium, its driver or selenium is missing; in CI, fail instead."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"browser test needs {', '.join(missing)} (apt-get install chromium " \
                 "chromium-driver; pip install selenium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of a real demo run: three companies, one shared."""
    directory = tmp_path_factory.mktemp("demo")
    home = open_home(build_demo_home(directory))
    store = home.store()
    try:
        with store.reading() as session:
            built = build_reports(session)
    finally:
        store.dispose()
    assert [r.verdict.value for r in built.companies] == ["shared", "clean", "clean"]
    path = directory / "report.html"
    path.write_text(render_html(built.companies, datetime.now(UTC), built.probes),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Debian Chromium through its own chromedriver; nothing is ever downloaded."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1100,900",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver.
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                                  options=options)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    pixels: list[bytes]
    """One row per scanline, RGB or RGBA bytes."""
    channels: int

    def colours(self) -> dict[tuple[int, ...], int]:
        counts: dict[tuple[int, ...], int] = {}
        step = self.channels
        for row in self.pixels:
            for x in range(0, len(row), step):
                key = tuple(row[x:x + 3])
                counts[key] = counts.get(key, 0) + 1
        return counts


def decode_png(data: bytes) -> Image:
    """A small PNG decoder (8-bit RGB/RGBA, no interlace), enough for Chromium's screenshots."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + predictor) & 0xFF
        else:
            assert kind == 0, f"unknown PNG filter {kind}"
        rows.append(bytes(line))
        previous = line
    return Image(width, height, rows, channels)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def console_errors(driver: WebDriver) -> list[dict[str, object]]:
    """The browser console's SEVERE entries since the last call."""
    entries: list[dict[str, object]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e for e in entries if e.get("level") == "SEVERE"]


def blank_page_signs(image: Image) -> list[str]:
    """Why a screenshot looks like a blank page; empty when it shows a rendered report."""
    colours = image.colours()
    background = max(colours.values())
    signs = []
    if len(colours) <= 50:
        signs.append(f"only {len(colours)} colours")
    if sum(colours.values()) - background <= image.width * image.height // 20:
        signs.append("under 5% of the pixels differ from the background")
    if colours.get(_rgb(SHARED_RED), 0) <= 100:
        signs.append("the shared verdict's red is not on screen")
    return signs


def test_the_screenshot_check_fails_on_a_blank_page(browser: WebDriver,
                                                    demo_report: Path) -> None:
    """The check the rendering test relies on must reject an empty or invisible page."""
    browser.get("about:blank")
    assert len(blank_page_signs(decode_png(browser.get_screenshot_as_png()))) == 3
    browser.get(demo_report.as_uri())
    browser.execute_script("document.body.style.visibility = 'hidden'")
    assert len(blank_page_signs(decode_png(browser.get_screenshot_as_png()))) == 3


def test_the_report_renders_in_chromium(browser: WebDriver, demo_report: Path) -> None:
    from selenium.webdriver.common.by import By

    console_errors(browser)  # start from an empty console
    browser.get(demo_report.as_uri())
    assert browser.title.startswith("Canary breach report")
    assert console_errors(browser) == []
    # Nothing was fetched: no stylesheet, font, image or script from anywhere.
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources == []

    sections = browser.find_elements(By.CSS_SELECTOR, "section.company[data-verdict]")
    verdicts = [s.get_attribute("data-verdict") for s in sections]
    assert verdicts == ["shared", "clean", "clean"]
    for section in sections:
        verdict = section.get_attribute("data-verdict") or ""
        badge = section.find_element(By.CSS_SELECTOR, ".verdict")
        assert badge.is_displayed() and badge.text.strip("▲△✓○ ").lower() == verdict
        timeline = section.find_element(By.CSS_SELECTOR, "svg.timeline")
        assert timeline.size["width"] > 300 and timeline.size["height"] > 100
    megamart = sections[0]
    assert "MegaMart" in megamart.find_element(By.TAG_NAME, "h2").text
    assert "dealblaster.example" in megamart.text

    # The shared company's timeline, as pixels: its processor's mail and the third party's.
    chart = decode_png(
        megamart.find_element(By.CSS_SELECTOR, "svg.timeline").screenshot_as_png).colours()
    assert chart.get(_rgb("#81c784"), 0) > 50, "no own (processor) mail drawn"
    assert chart.get(_rgb(SHARED_RED), 0) > 50, "no third-party mail drawn"

    # The whole window: a rendered page, not a blank one.
    page = decode_png(browser.get_screenshot_as_png())
    assert page.width > 500 and page.height > 500
    assert blank_page_signs(page) == []


def test_the_report_prints_to_pdf(browser: WebDriver, demo_report: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.print_page_options import PrintOptions

    browser.get(demo_report.as_uri())
    # In print, every company section keeps together and the page is black on white.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        for section in browser.find_elements(By.CSS_SELECTOR, "section.company"):
            assert section.value_of_css_property("break-inside") == "avoid"
        body = browser.find_element(By.TAG_NAME, "body")
        assert body.value_of_css_property("color") in ("rgba(0, 0, 0, 1)", "rgb(0, 0, 0)")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    options = PrintOptions()
    options.page_width, options.page_height = 21.0, 29.7  # A4, in centimetres
    pdf = base64.b64decode(browser.print_page(options))
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 30_000
    pages = re.search(rb"/Type /Pages\b[^>]*?/Count (\d+)", pdf)
    assert pages is not None and int(pages.group(1)) >= 2, "three companies on one page?"

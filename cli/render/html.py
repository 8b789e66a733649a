"""The breach report as one self-contained HTML page, readable on screen and printed to PDF.

`render_html` turns the same `CompanyReport` values as `canary report` into a
single HTML5 document: inline CSS, an inline SVG timeline per company, no
JavaScript and no external resource of any kind, so the file can be mailed,
archived or printed as it is. Every piece of text that came from a message
(subjects, Message-IDs, sender names and addresses) is hostile input: it is
escaped, stripped of control characters and has its bidi controls made
visible. The output depends only on the arguments, never on the clock.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from canary.aliases import RetireReply
from canary.consent import Consent, Finding, FindingKind
from canary.relation import Relation
from canary.report import (
    EVIDENCE_SHOWN,
    UNKNOWN_SENDER,
    AliasView,
    CompanyReport,
    SenderSummary,
    Sighting,
    Verdict,
    likely_brokers,
)
from canary.wording import iso_time, plural

VERDICT_LABEL = {
    Verdict.SHARED: "Shared",
    Verdict.LEAKED: "Leaked",
    Verdict.CLEAN: "Clean",
    Verdict.PENDING: "Pending",
    Verdict.QUIET: "Quiet",
}
VERDICT_MEANING = {
    Verdict.SHARED: "An organisation never given this address sent authenticated mail to it: "
                    "the company shared or sold the address.",
    Verdict.LEAKED: "Unexpected mail arrived, but none of it is authenticated: the address "
                    "leaked (a breach, a scrape or a sale), source unproven.",
    Verdict.CLEAN: "Only the company's own mail and its processors'.",
    Verdict.PENDING: "Mail arrived but is not analysed yet.",
    Verdict.QUIET: "No mail yet.",
}
RELATION_LABEL = {
    Relation.FIRST_PARTY: "first party",
    Relation.PROCESSOR: "processor",
    Relation.THIRD_PARTY: "third party",
    Relation.UNVERIFIED: "unverified",
    Relation.SPOOFED: "spoofed",
    Relation.IMPERSONATION: "impersonation",
    Relation.BACKSCATTER: "backscatter",
    Relation.UNPROVEN: "unproven",
}
FINDING_LABEL = {
    FindingKind.AFTER_OPTOUT: "Marketing after opt-out",
    FindingKind.OVER_FREQUENCY: "More marketing than agreed",
}

# Timeline colours: a lane per kind of mail, so the chart also reads in greyscale.
PENDING = "pending"
SERIES_COLOUR = {
    Relation.FIRST_PARTY.value: "#2e7d32",
    Relation.PROCESSOR.value: "#81c784",
    Relation.THIRD_PARTY.value: "#b3261e",
    Relation.UNVERIFIED.value: "#ef8a17",
    Relation.SPOOFED.value: "#7b1fa2",
    Relation.IMPERSONATION.value: "#ad1457",
    Relation.BACKSCATTER.value: "#8d6e63",
    Relation.UNPROVEN.value: "#bdbdbd",
    PENDING: "#9e9e9e",
}
SERIES_LABEL = {
    Relation.FIRST_PARTY.value: "first party",
    Relation.PROCESSOR.value: "processor",
    Relation.THIRD_PARTY.value: "third party",
    Relation.UNVERIFIED.value: "unverified",
    Relation.SPOOFED.value: "spoofed",
    Relation.IMPERSONATION.value: "impersonation",
    Relation.BACKSCATTER.value: "backscatter",
    Relation.UNPROVEN.value: "unproven",
    PENDING: "pending analysis",
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Control characters other than tab and newline, and lone surrogates (undecodable bytes).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Bidi controls reorder the text around them: shown, not obeyed (trojan-source style).
_BIDI = re.compile(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9_-]+")

CSS = """
:root {
  --ink: #1c1f24; --muted: #5b6470; --rule: #d9dde3; --paper: #ffffff; --wash: #f5f6f8;
  --shared: #b3261e; --leaked: #c25e00; --clean: #2e7d32; --quiet: #6b7280;
}
* { box-sizing: border-box; }
html { background: var(--wash); }
body {
  margin: 0 auto; padding: 28px 32px 40px; max-width: 980px; background: var(--paper);
  color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif;
}
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 20px; margin: 0; }
h3 { font-size: 14px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: 0.05em;
     color: var(--muted); }
p { margin: 6px 0; }
.meta, .muted { color: var(--muted); }
.mono, code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono",
              monospace; font-size: 12px; }
.hostile { unicode-bidi: isolate; overflow-wrap: anywhere; }
td time { white-space: nowrap; }
header.report { border-bottom: 3px solid var(--ink); padding-bottom: 10px; margin-bottom: 18px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px;
         border-bottom: 1px solid var(--rule); }
th { font-size: 12px; color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--rule); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr, tbody.sender { break-inside: avoid; }
tr.evidence td { border-bottom: 1px solid var(--rule); padding-top: 0; }
tr.has-evidence td { border-bottom: none; }
.summary a { color: inherit; }
section.brokers { margin-top: 22px; break-inside: avoid; }
.verdict {
  display: inline-block; padding: 2px 9px; border-radius: 4px; font-weight: 700;
  font-size: 12px; letter-spacing: 0.06em; text-transform: uppercase; color: #fff;
  border: 2px solid transparent; white-space: nowrap;
}
.verdict-shared { background: var(--shared); border-color: var(--shared); }
.verdict-leaked { background: var(--leaked); border-color: var(--leaked); }
.verdict-clean { background: var(--clean); border-color: var(--clean); }
.verdict-quiet { background: var(--paper); color: var(--quiet); border-color: var(--quiet); }
.verdict::before { margin-right: 5px; }
.verdict-shared::before { content: "\\25B2"; }
.verdict-leaked::before { content: "\\25B3"; }
.verdict-clean::before { content: "\\2713"; }
.verdict-quiet::before { content: "\\25CB"; }
section.company {
  margin: 26px 0 0; padding: 16px 18px 12px; border: 1px solid var(--rule);
  border-left: 6px solid var(--quiet); border-radius: 6px; break-inside: avoid;
}
section.company[data-verdict="shared"] { border-left-color: var(--shared); }
section.company[data-verdict="leaked"] { border-left-color: var(--leaked); }
section.company[data-verdict="clean"] { border-left-color: var(--clean); }
.company-head { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 14px; }
.company-head h2 { margin-right: auto; }
.meaning { margin: 8px 0 2px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 12px 0 0; }
.facts dt { color: var(--muted); font-weight: 600; }
.facts dd { margin: 0; }
.facts ul { margin: 0; padding: 0; list-style: none; }
.counts span { white-space: nowrap; margin-right: 12px; }
.finding { border: 1px solid var(--rule); border-left: 4px solid var(--leaked);
           border-radius: 4px; padding: 8px 12px; margin: 8px 0; break-inside: avoid; }
.finding ol { margin: 6px 0 0; padding-left: 20px; }
.finding li { margin: 2px 0; }
.evidence td { padding-left: 22px; font-size: 12px; }
.evidence-title { color: var(--muted); font-weight: 600; font-size: 11px; }
.examples { margin: 0; padding: 0; list-style: none; }
.examples li { margin: 2px 0 6px; padding-left: 10px; border-left: 2px solid var(--rule); }
.examples .mono { font-size: 11px; }
.examples .sha { color: var(--muted); }
figure { margin: 10px 0 4px; break-inside: avoid; }
figcaption { font-size: 12px; color: var(--muted); }
svg.timeline { display: block; width: 100%; height: auto; font-family: inherit; }
svg.timeline text { font-size: 11px; fill: var(--ink); }
svg.timeline .axis-label { fill: var(--muted); font-size: 10px; }
svg.timeline .lane-title { font-weight: 600; }
svg.timeline .empty { fill: var(--muted); font-size: 12px; }
.flag { font-size: 11px; color: var(--shared); font-weight: 600; }
footer { margin-top: 30px; padding-top: 10px; border-top: 1px solid var(--rule);
         color: var(--muted); font-size: 12px; }
footer dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; }
footer dd { margin: 0; }
@page { margin: 14mm 12mm; }
@media print {
  html, body { background: #fff; color: #000; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  table { font-size: 9pt; }
  .mono, code, .examples .mono { font-size: 8pt; }
  .meta, .muted, th, h3, .facts dt, figcaption, footer, .examples .sha { color: #000; }
  section.company { border: 1px solid #000; border-left-width: 6px; border-radius: 0;
                    break-inside: avoid; page-break-inside: avoid; }
  .verdict { background: #fff; color: #000; border-color: #000; }
  .verdict-shared { border-width: 3px; }
  h2, h3, .company-head { break-after: avoid; page-break-after: avoid; }
  svg.timeline { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
  svg.timeline text, svg.timeline .axis-label, svg.timeline .empty { fill: #000; }
  a { color: #000; text-decoration: none; }
}
"""


def _text(value: object) -> str:
    """Escape any text for HTML (body, attribute or inline SVG alike).

    Control characters and lone surrogates are dropped; bidi controls are
    shown as `<U+202E>` so they cannot reorder what the reader sees.
    """
    cleaned = _UNPRINTABLE.sub("\ufffd", str(value))
    cleaned = _BIDI.sub(lambda m: f"<U+{ord(m.group()):04X}>", cleaned)
    return html.escape(cleaned, quote=True)


def _hostile(value: str | None, empty: str = "—") -> str:
    """Text from a message, in a span that isolates its direction and wraps anywhere."""
    if not value:
        return f'<span class="muted">{_text(empty)}</span>'
    return f'<span class="hostile">{_text(value)}</span>'


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(moment: datetime, *, clock: bool = False) -> str:
    moment = _utc(moment)
    shown = f"{moment:%Y-%m-%d %H:%M} UTC" if clock else f"{moment:%Y-%m-%d}"
    return f'<time datetime="{_text(iso_time(moment))}">{shown}</time>'


def _verdict_badge(verdict: Verdict) -> str:
    return (f'<span class="verdict verdict-{verdict.value}">'
            f"{_text(VERDICT_LABEL[verdict])}</span>")


def _section_ids(reports: Sequence[CompanyReport]) -> list[str]:
    """A unique, attribute-safe id per company section, from its slug."""
    ids: list[str] = []
    for report in reports:
        base = "company-" + (_SLUG_UNSAFE.sub("-", report.slug.lower()).strip("-") or "unnamed")
        candidate, suffix = base, 2
        while candidate in ids:
            candidate, suffix = f"{base}-{suffix}", suffix + 1
        ids.append(candidate)
    return ids


# --- Timeline -----------------------------------------------------------------------------


@dataclass
class _Bin:
    start: date
    counts: dict[str, int] = field(default_factory=dict)
    senders: dict[str, set[str]] = field(default_factory=dict)
    subjects: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Lane:
    title: str
    caption: str
    series: tuple[str, ...]


LANES = (
    _Lane("Own mail", "company, processors",
          (Relation.FIRST_PARTY.value, Relation.PROCESSOR.value, Relation.UNPROVEN.value)),
    _Lane("Unexpected", "anyone else",
          tuple(r.value for r in Relation if r.unexpected)),
    _Lane("Pending", "not analysed yet", (PENDING,)),
)

SVG_WIDTH = 720
TOOLTIP_SUBJECTS = 3
PLOT_LEFT = 118
PLOT_RIGHT = 12
LANE_HEIGHT = 54
LANE_GAP = 12
AXIS_HEIGHT = 38
LEGEND_HEIGHT = 22


def _bin_unit(first: date, last: date) -> str:
    days = (last - first).days + 1
    if days <= 100:
        return "day"
    if days <= 760:
        return "week"
    return "month"


def _bin_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next_bin(start: date, unit: str) -> date:
    if unit == "week":
        return start + timedelta(days=7)
    if unit == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def _bin_label(start: date, unit: str) -> str:
    if unit == "week":
        return f"week of {start:%Y-%m-%d}"
    if unit == "month":
        return f"{MONTHS[start.month - 1]} {start.year}"
    return f"{start:%Y-%m-%d}"


def _short_date(day: date, with_year: bool, unit: str) -> str:
    if unit == "month":
        return f"{MONTHS[day.month - 1]} {day.year}" if with_year else MONTHS[day.month - 1]
    text = f"{day.day} {MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if with_year else text


def _tick_step(bins: int, unit: str) -> int:
    """How many bins apart the axis labels are: at most about eight of them."""
    steps = {"day": (1, 2, 7, 14, 28), "week": (1, 2, 4, 8, 13, 26, 52),
             "month": (1, 2, 3, 6, 12, 24, 60)}[unit]
    for step in steps:
        if bins / step <= 8:
            return step
    return steps[-1] * (bins // (steps[-1] * 8) + 1)


def _series(sighting: Sighting) -> str:
    return PENDING if sighting.relation is None else sighting.relation.value


def _bins(report: CompanyReport, end: datetime) -> tuple[list[_Bin], str]:
    moments = [_utc(a.issued_at) for a in report.aliases]
    moments += [_utc(s.received_at) for s in report.timeline]
    first = min(moments).date() if moments else _utc(end).date()
    last = max([*moments, _utc(end)]).date()
    unit = _bin_unit(first, last)
    bins: list[_Bin] = []
    cursor = _bin_start(first, unit)
    while cursor <= last:
        bins.append(_Bin(cursor))
        cursor = _next_bin(cursor, unit)
    index = {b.start: b for b in bins}
    for sighting in report.timeline:
        target = index[_bin_start(_utc(sighting.received_at).date(), unit)]
        series = _series(sighting)
        target.counts[series] = target.counts.get(series, 0) + 1
        target.senders.setdefault(series, set()).add(sighting.sender_org or UNKNOWN_SENDER)
        if sighting.subject:
            target.subjects.setdefault(series, []).append(sighting.subject)
    return bins, unit


def _bin_tooltip(b: _Bin, unit: str, lane: _Lane) -> str:
    total = sum(b.counts.get(s, 0) for s in lane.series)
    lines = [f"{_bin_label(b.start, unit)}: {plural(total, 'message')} ({lane.title.lower()})"]
    for series in lane.series:
        if b.counts.get(series):
            senders = ", ".join(sorted(b.senders.get(series, ())))
            lines.append(f"{b.counts[series]} {SERIES_LABEL[series]}: {senders}")
    subjects = [subject for series in lane.series for subject in b.subjects.get(series, ())]
    lines.extend(f"“{subject}”" for subject in subjects[:TOOLTIP_SUBJECTS])
    if len(subjects) > TOOLTIP_SUBJECTS:
        lines.append(f"…and {len(subjects) - TOOLTIP_SUBJECTS} more")
    return "\n".join(lines)


def _x_of(moment: date, bins: Sequence[_Bin], unit: str, bin_width: float) -> float:
    """The x position of a day: its bin, plus its place inside a week or month bin."""
    start = _bin_start(moment, unit)
    position = next((i for i, b in enumerate(bins) if b.start == start), 0)
    span = (_next_bin(start, unit) - start).days
    return PLOT_LEFT + (position + (moment - start).days / span) * bin_width


def _markers(aliases: Sequence[AliasView]) -> list[tuple[date, str]]:
    """Issue and retirement days, one label per day."""
    marks: dict[date, list[str]] = {}
    for number, alias in enumerate(sorted(aliases, key=lambda a: a.issued_at)):
        issued = _utc(alias.issued_at).date()
        marks.setdefault(issued, []).append("issued" if number == 0 else "new alias")
        if alias.retired_at is not None:
            marks.setdefault(_utc(alias.retired_at).date(), []).append("retired")
    return [(day, ", ".join(dict.fromkeys(texts))) for day, texts in sorted(marks.items())]


def _text_width(text: str) -> float:
    """Roughly how wide an SVG label of 10px is; enough to keep labels apart."""
    return 5.8 * len(text)


@dataclass(frozen=True, slots=True)
class _Marker:
    x: float
    row: int
    text: str
    day: date


def _place_markers(marks: Sequence[tuple[date, str]], bins: Sequence[_Bin], unit: str,
                   bin_width: float) -> list[_Marker]:
    """Marker labels in rows, a label moving up a row when it would overlap the last one."""
    placed: list[_Marker] = []
    row_ends: list[float] = []
    for day, text in marks:
        x = _x_of(day, bins, unit, bin_width)
        row = next((i for i, end in enumerate(row_ends) if x > end), len(row_ends))
        if row == len(row_ends):
            row_ends.append(0.0)
        row_ends[row] = x + 3 + _text_width(text) + 6
        placed.append(_Marker(x, row, text, day))
    return placed


def _lane_svg(lane: _Lane, top: int, bins: Sequence[_Bin], unit: str, bin_width: float,
              peak: int) -> list[str]:
    plot_width = SVG_WIDTH - PLOT_LEFT - PLOT_RIGHT
    base = top + LANE_HEIGHT
    parts = [
        f'<g class="lane" data-lane="{_text(lane.title.lower())}">',
        f'<rect x="{PLOT_LEFT}" y="{top}" width="{plot_width}" height="{LANE_HEIGHT}" '
        'fill="#f3f4f6"/>',
        f'<line x1="{PLOT_LEFT}" y1="{base}" x2="{PLOT_LEFT + plot_width}" y2="{base}" '
        'stroke="#9aa1ab" stroke-width="1"/>',
        f'<text class="lane-title" x="{PLOT_LEFT - 8}" y="{top + 22}" text-anchor="end">'
        f"{_text(lane.title)}</text>",
        f'<text class="axis-label" x="{PLOT_LEFT - 8}" y="{top + 36}" text-anchor="end">'
        f"{_text(lane.caption)}</text>",
    ]
    gap = min(bin_width * 0.18, 3.0)
    width = max(bin_width - gap, 0.8)
    for position, b in enumerate(bins):
        if not any(b.counts.get(s) for s in lane.series):
            continue
        x = PLOT_LEFT + position * bin_width + gap / 2
        parts.append(f'<g class="bin"><title>{_text(_bin_tooltip(b, unit, lane))}</title>')
        y = float(base)
        for series in lane.series:
            count = b.counts.get(series, 0)
            if not count:
                continue
            bar = max(count / peak * (LANE_HEIGHT - 6), 2.0)
            y -= bar
            parts.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" '
                         f'height="{bar:.2f}" fill="{SERIES_COLOUR[series]}" '
                         f'data-series="{series}" data-count="{count}"/>')
        parts.append("</g>")
    parts.append("</g>")
    return parts


def _axis_svg(axis_y: int, bins: Sequence[_Bin], unit: str, bin_width: float,
              peak: int) -> list[str]:
    plot_width = SVG_WIDTH - PLOT_LEFT - PLOT_RIGHT
    parts = [f'<g class="axis"><line x1="{PLOT_LEFT}" y1="{axis_y}" '
             f'x2="{PLOT_LEFT + plot_width}" y2="{axis_y}" stroke="#1c1f24"/>']
    last_year: int | None = None
    for position in range(0, len(bins), _tick_step(len(bins), unit)):
        day = bins[position].start
        x = PLOT_LEFT + position * bin_width
        with_year = day.year != last_year
        last_year = day.year
        parts.append(f'<line x1="{x:.2f}" y1="{axis_y}" x2="{x:.2f}" y2="{axis_y + 5}" '
                     'stroke="#1c1f24"/>'
                     f'<text class="axis-label" x="{x:.2f}" y="{axis_y + 17}" '
                     f'text-anchor="{"start" if position == 0 else "middle"}">'
                     f"{_short_date(day, with_year, unit)}</text>")
    parts.append(f'<text class="axis-label" x="{PLOT_LEFT - 8}" y="{axis_y + 17}" '
                 f'text-anchor="end">{_text(f"per {unit}, UTC")}</text>')
    parts.append(f'<text class="axis-label" x="{PLOT_LEFT - 8}" y="{axis_y + 29}" '
                 f'text-anchor="end">{_text(f"tallest: {peak}")}</text></g>')
    return parts


def timeline_svg(report: CompanyReport, end: datetime) -> str:
    """An inline SVG of the company's mail per day (or week, or month), a lane per kind.

    Own mail and unexpected mail are drawn on the same scale, in separate
    lanes, so the chart reads in greyscale too; dashed lines mark when an
    alias was issued or retired. Each bar's `<title>` names its senders.
    """
    bins, unit = _bins(report, end)
    pending = any(s.relation is None for s in report.timeline)
    lanes = [lane for lane in LANES if lane.series != (PENDING,) or pending]
    plot_width = SVG_WIDTH - PLOT_LEFT - PLOT_RIGHT
    bin_width = plot_width / len(bins)
    peak = max(max((sum(b.counts.get(s, 0) for s in lane.series) for b in bins), default=0)
               for lane in lanes) or 1
    markers = _place_markers(_markers(report.aliases), bins, unit, bin_width)
    marker_band = 14 * (max((m.row for m in markers), default=-1) + 1) + 4
    lanes_top = marker_band
    lanes_bottom = lanes_top + len(lanes) * (LANE_HEIGHT + LANE_GAP) - LANE_GAP
    present = [s for lane in lanes for s in lane.series if any(b.counts.get(s) for b in bins)]
    height = lanes_bottom + AXIS_HEIGHT + (LEGEND_HEIGHT if present else 0)
    label = (f"Mail to {report.name}'s aliases per {unit}: "
             f"{report.counts.total} in all, "
             f"{report.counts.unexpected} unexpected")
    parts = [
        f'<svg class="timeline" role="img" viewBox="0 0 {SVG_WIDTH} {height}" '
        f'width="{SVG_WIDTH}" height="{height}" aria-label="{_text(label)}" data-bin="{unit}">',
        f"<title>{_text(label)}</title>",
    ]
    for number, lane in enumerate(lanes):
        top = lanes_top + number * (LANE_HEIGHT + LANE_GAP)
        parts.extend(_lane_svg(lane, top, bins, unit, bin_width, peak))
    if not report.timeline:
        parts.append(f'<text class="empty" x="{PLOT_LEFT + plot_width / 2:.1f}" '
                     f'y="{lanes_top + LANE_HEIGHT / 2 + 4:.1f}" text-anchor="middle">'
                     "No mail yet</text>")
    for marker in markers:
        label_y = marker_band - 6 - 14 * marker.row
        right = marker.x + 3 + _text_width(marker.text) > SVG_WIDTH
        label_x = marker.x - 3 if right else marker.x + 3
        anchor = "end" if right else "start"
        parts.append(f'<g class="marker"><title>{_text(f"{marker.text} {marker.day:%Y-%m-%d}")}'
                     f'</title><line x1="{marker.x:.2f}" y1="{label_y - 8}" x2="{marker.x:.2f}" '
                     f'y2="{lanes_bottom}" stroke="#1c1f24" stroke-width="1" '
                     'stroke-dasharray="3 3"/>'
                     f'<text class="axis-label" x="{label_x:.2f}" y="{label_y}" '
                     f'text-anchor="{anchor}">{_text(marker.text)}</text></g>')
    parts.extend(_axis_svg(lanes_bottom + 1, bins, unit, bin_width, peak))
    legend_y = lanes_bottom + AXIS_HEIGHT + 6
    x = float(PLOT_LEFT)
    parts.append('<g class="legend">')
    for series in present:
        name = SERIES_LABEL[series]
        parts.append(f'<rect x="{x:.1f}" y="{legend_y}" width="11" height="11" '
                     f'fill="{SERIES_COLOUR[series]}"/>'
                     f'<text x="{x + 15:.1f}" y="{legend_y + 10}">{_text(name)}</text>')
        x += 15 + 6.5 * len(name) + 18
    parts.append("</g></svg>")
    return "".join(parts)


# --- Company sections ---------------------------------------------------------------------


def _alias_item(alias: AliasView) -> str:
    line = (f'<li><span class="mono hostile">{_text(alias.address)}</span> — issued '
            f"{_time(alias.issued_at)}, {plural(alias.messages, 'message')}")
    if alias.retired_at is not None:
        reply = {RetireReply.ACCEPT: "still recorded", RetireReply.REJECT: "refused with 550",
                 None: ""}[alias.retire_reply]
        line += f"; <strong>retired</strong> {_time(alias.retired_at)}"
        if reply:
            line += f" (mail now {_text(reply)})"
    return line + "</li>"


def _counts(report: CompanyReport) -> str:
    c = report.counts
    items = [
        (c.total, "in all"),
        (c.of(Relation.FIRST_PARTY), "first party"),
        (c.of(Relation.PROCESSOR), "via processors"),
        (c.unexpected, "unexpected"),
    ]
    for count, word in ((c.of(Relation.THIRD_PARTY), "third party"),
                        (c.of(Relation.UNVERIFIED), "unverified"),
                        (c.of(Relation.SPOOFED), "spoofed"),
                        (c.pending, "pending analysis"),
                        (c.temperror, "waiting for DNS")):
        if count:
            items.append((count, word))
    return " ".join(f"<span><strong>{n}</strong> {_text(word)}</span>" for n, word in items)


def _consent(consent: Consent | None) -> str:
    if consent is None:
        return '<span class="muted">nothing recorded</span>'
    marketing = {True: "yes", False: "no", None: "not recorded"}[consent.marketing]
    frequency = consent.frequency.value if consent.frequency else "not recorded"
    opted = "yes" if consent.opted_out else "no"
    return (f"marketing <strong>{marketing}</strong>, frequency <strong>{_text(frequency)}"
            f"</strong>, opted out <strong>{opted}</strong> "
            f'<span class="muted">(since {_time(consent.since)})</span>')


def _finding(finding: Finding) -> str:
    parts = [f'<div class="finding" data-kind="{_text(finding.kind.value)}">'
             f"<strong>{_text(FINDING_LABEL.get(finding.kind, finding.kind.value))}</strong>: "
             f"{_text(finding.summary)}"]
    if finding.observed or finding.agreed:
        parts.append(f"<p>Observed: <strong>{_text(finding.observed or '—')}</strong>; "
                     f"agreed: <strong>{_text(finding.agreed or '—')}</strong></p>")
    parts.append("<ol>")
    for mail in finding.messages[:EVIDENCE_SHOWN]:
        subject = f" — {_hostile(mail.subject)}" if mail.subject else ""
        parts.append(f"<li>{_time(mail.received_at, clock=True)} "
                     f'<span class="mono">{_hostile(mail.message_id, "(no Message-ID)")}</span>'
                     f"{subject}</li>")
    parts.append("</ol>")
    hidden = finding.message_count - EVIDENCE_SHOWN
    if hidden > 0:
        parts.append(f'<p class="muted">…and {plural(hidden, "more message")}; '
                     "<code>canary report --json</code> lists them all.</p>")
    parts.append("</div>")
    return "".join(parts)


def _sender_rows(sender: SenderSummary, subjects: dict[str, str], evidence: bool) -> str:
    flag = ' <span class="flag">flagged by you</span>' if sender.flagged else ""
    authenticated = ", ".join(map(str, sender.authenticated_by)) or "none"
    row_class = "has-evidence" if evidence and sender.examples else ""
    cells = (f'<tr class="{row_class}" data-relation="{sender.relation.value}">'
             f"<td>{_hostile(sender.organisation)}{flag}</td>"
             f"<td>{_text(RELATION_LABEL[sender.relation])}</td>"
             f"<td>{_hostile(authenticated)}</td>"
             f"<td>{_time(sender.first_seen)}</td><td>{_time(sender.last_seen)}</td>"
             f'<td class="num">{sender.count}</td></tr>')
    if not evidence or not sender.examples:
        return cells
    items = []
    for example in sender.examples:
        subject = subjects.get(example.sha256)
        items.append(
            f"<li>{_time(example.received_at, clock=True)}"
            + (f" — “{_hostile(subject)}”" if subject else "")
            + f'<br><span class="mono">Message-ID {_hostile(example.message_id, "(none)")}'
            f'</span><br><span class="mono sha">SHA-256 {_text(example.sha256)}</span></li>'
        )
    shown = "example" if len(sender.examples) == 1 else f"first {len(sender.examples)} examples"
    return (cells + '<tr class="evidence"><td colspan="6">'
            f'<div class="evidence-title">Evidence, {shown}:</div><ul class="examples">'
            + "".join(items) + "</ul></td></tr>")


def _sender_table(senders: Sequence[SenderSummary], subjects: dict[str, str],
                  evidence: bool) -> str:
    head = ("<table><thead><tr><th>Organisation</th><th>Relation</th><th>Authenticated by</th>"
            '<th>First seen</th><th>Last seen</th><th class="num">Count</th></tr></thead>')
    # A tbody per sender, so a page break never parts a sender from its evidence.
    body = "".join(f'<tbody class="sender">{_sender_rows(s, subjects, evidence)}</tbody>'
                   for s in senders)
    return head + body + "</table>"


def _first_unexpected(report: CompanyReport) -> str:
    if not report.unexpected:
        return '<span class="muted">none</span>'
    first = min(s.first_seen for s in report.unexpected)
    days = report.days_to_first_unexpected
    after = "" if days is None else (
        f", <strong>{plural(days, 'day')}</strong> after the alias was issued")
    return f"{_time(first)}{after}"


def _company(report: CompanyReport, section_id: str, generated_at: datetime) -> str:
    verdict = report.verdict
    subjects = {s.sha256: s.subject for s in report.timeline if s.sha256 and s.subject}
    parts = [
        f'<section class="company" id="{_text(section_id)}" data-verdict="{verdict.value}">',
        '<div class="company-head">',
        f"<h2>{_hostile(report.name)}</h2>",
        f"{_verdict_badge(verdict)}",
        f'<span>confidence <strong class="confidence">{_text(report.confidence.value)}'
        "</strong></span></div>",
        (f'<p class="meaning"><strong>Verdict: {_text(verdict.value)}.</strong> '
         f"{_text(VERDICT_MEANING[verdict])}</p>"
         if verdict in (Verdict.SHARED, Verdict.LEAKED) else ""),
        f'<p class="reason">Confidence {_text(report.confidence.value)}: '
        f"{_text(report.confidence_reason)}</p>",
        '<dl class="facts">',
    ]
    if report.note:
        parts.append(f"<dt>Note</dt><dd>{_hostile(report.note)}</dd>")
    parts.append(f"<dt>{'Alias' if len(report.aliases) == 1 else 'Aliases'}</dt><dd><ul>"
                 + "".join(_alias_item(a) for a in report.aliases) + "</ul></dd>")
    parts.append("<dt>Own domains</dt><dd>"
                 + (_hostile(", ".join(report.domains)) if report.domains
                    else '<span class="muted">none declared</span>') + "</dd>")
    parts.append(f'<dt>Mail</dt><dd class="counts">{_counts(report)}</dd>')
    parts.append(f"<dt>First unexpected</dt><dd>{_first_unexpected(report)}</dd>")
    parts.append(f"<dt>Consent</dt><dd>{_consent(report.consent)}</dd></dl>")
    if report.findings:
        parts.append("<h3>Consent findings</h3>")
        parts.extend(_finding(f) for f in report.findings)
    parts.append("<h3>Timeline</h3><figure>" + timeline_svg(report, generated_at)
                 + "<figcaption>Dashed lines mark when an alias was issued or retired. "
                 "On screen, point at a bar for its dates and senders.</figcaption></figure>")
    if report.unexpected:
        parts.append("<h3>Unexpected senders</h3>")
        parts.append(_sender_table(report.unexpected, subjects, evidence=True))
    own = [s for s in report.senders if s.relation.expected]
    if own:
        parts.append("<h3>The company's own mail</h3>")
        parts.append(_sender_table(own, subjects, evidence=False))
    parts.append("</section>")
    return "\n".join(parts)


def _summary(reports: Sequence[CompanyReport], ids: Sequence[str]) -> str:
    rows = []
    for report, section_id in zip(reports, ids, strict=True):
        days = report.days_to_first_unexpected
        rows.append(
            f'<tr><td><a href="#{_text(section_id)}">{_hostile(report.name)}</a></td>'
            f"<td>{_verdict_badge(report.verdict)}</td>"
            f"<td>{_text(report.confidence.value)}</td>"
            f'<td class="num">{report.counts.total}</td>'
            f'<td class="num">{report.counts.unexpected}</td>'
            f'<td class="num">{"—" if days is None else days}</td></tr>'
        )
    return ('<section class="summary"><h2>Summary, worst first</h2><table><thead><tr>'
            "<th>Company</th><th>Verdict</th><th>Confidence</th>"
            '<th class="num">Mail</th><th class="num">Unexpected</th>'
            '<th class="num">Days to first unexpected</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></section>")


def _brokers(reports: Iterable[CompanyReport]) -> str:
    brokers = likely_brokers(reports)
    if not brokers:
        return ""
    rows = "".join(f"<tr><td>{_hostile(b.organisation)}</td>"
                   f"<td>{_hostile(', '.join(b.companies))}</td></tr>" for b in brokers)
    return ('<section class="brokers"><h2>Likely list brokers</h2>'
            "<p>One authenticated sender on the aliases of several companies.</p>"
            "<table><thead><tr><th>Organisation</th><th>Seen on the aliases of</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>")


def _footer() -> str:
    terms = "".join(f"<dt>{_verdict_badge(v)}</dt><dd>{_text(VERDICT_MEANING[v])}</dd>"
                    for v in Verdict)
    return ("<footer><p>How to read this report: each alias was given to one company only. "
            "Mail from anyone else means the company passed the address on, or lost it."
            f"</p><dl>{terms}</dl><p>Generated by Canary. Message-IDs and SHA-256 digests "
            "identify the raw messages kept in Canary's store.</p></footer>")


def render_html(reports: Sequence[CompanyReport], generated_at: datetime, probes: int) -> str:
    """The report as one self-contained HTML5 document, companies in the order given."""
    generated = _utc(generated_at)
    ids = _section_ids(reports)
    worst = reports[0].verdict if reports else Verdict.QUIET
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # No script, no fetch: even a slip in escaping could not run or load anything.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="Canary">',
        f"<title>Canary breach report, {generated:%Y-%m-%d}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        f'<body data-worst="{worst.value}">',
        '<header class="report"><h1>Canary breach report</h1>',
        f'<p class="meta">Generated {_time(generated, clock=True)} · '
        f"{plural(len(reports), 'company', 'companies')}"
        + (f" · {plural(probes, 'probe')} (mail to never-issued addresses)" if probes else "")
        + "</p></header>",
    ]
    if not reports:
        parts.append('<p class="empty">No companies yet. Issue an alias with '
                     "<code>canary issue NAME</code>.</p>")
    else:
        parts.append(_summary(reports, ids))
        parts.append(_brokers(reports))
        parts.extend(_company(r, i, generated) for r, i in zip(reports, ids, strict=True))
    parts.append(_footer())
    parts.append("</body>\n</html>\n")
    return "\n".join(p for p in parts if p)

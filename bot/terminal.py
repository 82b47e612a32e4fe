"""Plain-text output for the command line: aligned tables and the sync report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any, TextIO

from bot.formatting import (
    KPI_LABELS,
    NOT_AVAILABLE,
    as_of,
    format_change,
    format_value,
    ordinal,
)
from connectors.report import SyncReport
from kpi.engine import Scorecard

MAX_PROBLEMS_SHOWN = 20


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int]) -> str:
    """Columns padded to their widest cell; the columns in `numeric` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join(line(row) for row in cells)


def sync_report(report: SyncReport) -> str:
    kind = "full sync" if report.full else "sync"
    lines = [f"{report.source} {kind} finished in {report.seconds:.1f} s"]
    if report.stopped_early:
        lines[0] = f"{report.source} {kind} stopped early: {report.stopped_early}"
    rows = [
        (name, o.new, o.updated, o.unchanged, o.deleted, o.skipped)
        for name, o in report.objects.items()
    ]
    headers = ("object", "new", "updated", "unchanged", "deleted", "skipped")
    lines += ["", table(headers, rows, numeric={1, 2, 3, 4, 5})]
    if report.api_calls:
        lines.append(f"API calls: {report.api_calls}")
        lines.append(f"Client-side rate-limit waits: {report.throttled_seconds:.1f} s")
    reasons = [
        f"  {name}: {count} × {reason}"
        for name, o in report.objects.items()
        for reason, count in o.skip_reasons.most_common()
    ]
    if reasons:
        lines += ["", "Skipped, by reason:", *reasons]
    if report.problems:
        lines += ["", "Rows that could not be read (skipped; the rest loaded):"]
        lines += [f"  {problem}" for problem in report.problems[:MAX_PROBLEMS_SHOWN]]
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"  … and {len(report.problems) - MAX_PROBLEMS_SHOWN} more")
    if report.warnings:
        lines += ["", "Warnings:", *(f"  {warning}" for warning in report.warnings)]
    return "\n".join(lines)


class LineProgress:
    """A one-line progress indicator on a terminal; silent when output is not a terminal."""

    def __init__(
        self, stream: TextIO = sys.stderr, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.active = stream.isatty()
        self.shown = False
        self.clock = clock
        self.started: dict[str, float] = {}  # when each object's first rows came

    def __call__(self, name: str, rows: int) -> None:
        if self.active:
            self.stream.write(f"\r\033[K{self.line(name, rows)}")
            self.stream.flush()
            self.shown = True

    def line(self, name: str, rows: int) -> str:
        """`Opportunity: 40,000 rows read, 1,850/s` (the rate once a second has passed)."""
        now = self.clock()
        started = self.started.setdefault(name, now)
        text = f"{name}: {rows:,} rows read"
        if now - started >= 1:
            text += f", {rows / (now - started):,.0f}/s"
        return text

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def scorecard(card: dict[str, Any], currency: str) -> str:
    """A partner's (or the program's) KPIs as a terminal table with trends."""
    period, previous = card["period"], card["previous_period"]
    title = card["partner"]["name"] if card["partner"] else "The partner program"
    lines = [
        f"{title} · {period['name']} ({_span(period)}), compared with {_span(previous)}",
        "",
    ]
    rows = [
        (
            KPI_LABELS[key][0],
            format_value(key, value, currency),
            format_value(key, card["previous"][key], currency),
            format_change(key, value, card["previous"][key], currency),
        )
        for key, value in card["kpis"].items()
    ]
    lines.append(table(("KPI", "value", "previous", "trend"), rows, numeric={1, 2}))
    channel_rows = [
        (
            channel,
            values["deal_count"],
            format_value("won_revenue", values["won_revenue"], currency),
            format_value("close_rate", values["close_rate"]),
        )
        for channel, values in card["channels"].items()
    ]
    lines += ["", table(("channel", "won", "revenue", "close rate"), channel_rows, {1, 2, 3})]
    stage_rows = [
        (
            stage["stage"],
            stage["entered"],
            format_value("close_rate", stage["share"]),
            NOT_AVAILABLE if stage["avg_days"] is None else f"{stage['avg_days']:.1f}",
        )
        for stage in card["stages"]
    ]
    if stage_rows:
        headers = ("stage", "entered", "share", "avg days")
        lines += ["", table(headers, stage_rows, numeric={1, 2, 3})]
    lines.append("")
    if card["partner"] is not None:
        if card["quality_score"] is None:
            lines.append("Quality score: n/a (not active in the period, or no KPI to rank)")
        else:
            lines.append(
                f"Quality score {card['quality_score']:.1f} · "
                f"rank {ordinal(card['rank'])} of {card['ranked_partners']}"
            )
    else:
        lines.append(f"{card['ranked_partners']} partners ranked by quality score")
    lines.append(f"Data as of {as_of(card['data_as_of'])}")
    return "\n".join(lines)


def scorecard_notes(details: Scorecard, currency: str) -> str:
    """Tier, the comparison with direct deals, and how far to trust the numbers."""
    lines = []
    tier = details.tier
    if tier.earned or tier.next_tier:
        earned = f"Tier earned: {tier.earned or 'none'}"
        if tier.differs:
            earned += f" (the CRM records {tier.recorded})"
        lines.append(earned)
    if tier.next_tier and tier.gap is not None:
        text = f"{tier.gap:.1f} points short of {tier.next_tier}"
        if tier.lever:
            label = KPI_LABELS[tier.lever.kpi][0].lower()
            text += (
                f"; fastest way there: {label} above "
                f"{format_value(tier.lever.kpi, tier.lever.beat, currency)} "
                f"(now {format_value(tier.lever.kpi, tier.lever.current, currency)})"
            )
        else:
            text += "; no single KPI closes the gap alone"
        lines.append(text)
    kpis, direct = details.card["kpis"], details.baseline
    comparisons = [
        f"{KPI_LABELS[key][0].lower()} {format_value(key, kpis[key], currency)} vs "
        f"{format_value(key, direct[key], currency)}"
        for key in ("close_rate", "avg_deal_size", "sales_cycle_days")
        if kpis[key] is not None and direct[key] is not None
    ]
    if comparisons:
        lines.append("Against direct deals: " + "; ".join(comparisons))
    trust = details.trust
    doubts = [
        (trust.no_amount, "without an amount"),
        (trust.no_rate, "in a currency with no rate"),
        (trust.closed_before_created, "closed before created"),
        (trust.open_past_close_date, "open past their close date"),
    ]
    shown = [f"{count} {what}" for count, what in doubts if count]
    lines.append("Data trust: " + ("; ".join(shown) if shown else "no deals skipped or doubted"))
    if details.sync_problem:
        lines.append(details.sync_problem)
    return "\n".join(lines)


def _span(period: dict[str, str]) -> str:
    last = date.fromisoformat(period["end"]) - timedelta(days=1)
    return f"{period['start']} – {last.isoformat()}"

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
from kpi.formulas import CUSTOMER_KEYS
from templates import word, word_table

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
    kind = word("terminal.full_sync" if report.full else "terminal.sync")
    if report.stopped_early:
        first = word(
            "terminal.sync_stopped", source=report.source, kind=kind, reason=report.stopped_early
        )
    else:
        first = word(
            "terminal.sync_finished", source=report.source, kind=kind, seconds=report.seconds
        )
    lines = [first]
    rows = [
        (name, o.new, o.updated, o.unchanged, o.deleted, o.skipped)
        for name, o in report.objects.items()
    ]
    headers = ("object", "new", "updated", "unchanged", "deleted", "skipped")
    lines += ["", table(headers, rows, numeric={1, 2, 3, 4, 5})]
    if report.api_calls:
        lines.append(word("terminal.api_calls", count=report.api_calls))
        lines.append(word("terminal.throttled", seconds=report.throttled_seconds))
    reasons = [
        word("terminal.skip_reason", name=name, count=count, reason=reason)
        for name, o in report.objects.items()
        for reason, count in o.skip_reasons.most_common()
    ]
    if reasons:
        lines += ["", word("terminal.skipped_by_reason"), *reasons]
    if report.problems:
        lines += ["", word("terminal.unreadable_rows")]
        lines += [f"  {problem}" for problem in report.problems[:MAX_PROBLEMS_SHOWN]]
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            lines.append("  " + word("more", count=len(report.problems) - MAX_PROBLEMS_SHOWN))
    if report.warnings:
        lines += ["", word("terminal.warnings"), *(f"  {warning}" for warning in report.warnings)]
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
        text = word("terminal.rows_read", name=name, rows=rows)
        if now - started >= 1:
            text += word("terminal.rows_per_second", rate=rows / (now - started))
        return text

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def scorecard(card: dict[str, Any], currency: str, has_customers: bool = True) -> str:
    """A partner's (or the program's) KPIs as a terminal table with trends; without customer
    data in the store (`has_customers` false) the customer rows, all 0 and n/a, are left out."""
    period, previous = card["period"], card["previous_period"]
    title = card["partner"]["name"] if card["partner"] else word("terminal.program_title")
    heading = word(
        "terminal.scorecard_title",
        title=title,
        period=period["name"],
        span=_span(period),
        previous=_span(previous),
    )
    lines = [heading, ""]
    rows = [
        (
            KPI_LABELS[key][0],
            format_value(key, value, currency),
            format_value(key, card["previous"][key], currency),
            format_change(key, value, card["previous"][key], currency),
        )
        for key, value in card["kpis"].items()
        if has_customers or key not in CUSTOMER_KEYS
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
    lines += _training_lines(card, currency)
    if card["partner"] is not None:
        if card["quality_score"] is None:
            lines.append(word("terminal.no_quality_score"))
        else:
            lines.append(
                word(
                    "terminal.quality_score",
                    score=card["quality_score"],
                    rank=ordinal(card["rank"]),
                    ranked=card["ranked_partners"],
                )
            )
    else:
        lines.append(word("terminal.ranked_partners", count=card["ranked_partners"]))
    lines.append(word("terminal.data_as_of", when=as_of(card["data_as_of"])))
    return "\n".join(lines)


def _training_lines(card: dict[str, Any], currency: str) -> list[str]:
    """kpi-spec.md section 8: a partner's latest course with the deals before and after it, or
    the program's trained and untrained partners (nothing when there is no training)."""
    training = card.get("training")
    if not training:
        return []
    if card["partner"] is not None:
        before, after = training["before"], training["after"]
        return [
            word(
                "terminal.training",
                course=training["course"],
                day=training["completed_on"],
                after=format_value("close_rate", after["close_rate"]),
                before=format_value("close_rate", before["close_rate"]),
                after_cycle=format_value("sales_cycle_days", after["sales_cycle_days"]),
                before_cycle=format_value("sales_cycle_days", before["sales_cycle_days"]),
                observed=training["after_days"],
            )
        ]
    if not training["trained"]["partners"]:
        return []
    return [
        word(
            "terminal.training_group",
            group=word(f"terminal.{name}"),
            partners=group["partners"],
            per_partner=format_value("won_revenue", group["won_revenue_per_partner"], currency),
            close_rate=format_value("close_rate", group["close_rate"]),
            cycle=format_value("sales_cycle_days", group["sales_cycle_days"]),
        )
        for name, group in training.items()
    ]


def scorecard_notes(details: Scorecard, currency: str) -> str:
    """Tier, the comparison with direct deals, and how far to trust the numbers."""
    lines = []
    tier = details.tier
    if tier.earned or tier.next_tier:
        earned = word("terminal.tier_earned", tier=tier.earned or word("terminal.tier_none"))
        if tier.differs:
            earned += word("terminal.tier_recorded", tier=tier.recorded)
        lines.append(earned)
    if tier.next_tier and tier.gap is not None:
        text = word("terminal.tier_gap", gap=tier.gap, tier=tier.next_tier)
        if tier.lever:
            text += word(
                "terminal.tier_lever",
                kpi=KPI_LABELS[tier.lever.kpi][0].lower(),
                beat=format_value(tier.lever.kpi, tier.lever.beat, currency),
                current=format_value(tier.lever.kpi, tier.lever.current, currency),
            )
        else:
            text += word("terminal.tier_no_lever")
        lines.append(text)
    kpis, direct = details.card["kpis"], details.baseline
    comparisons = [
        word(
            "terminal.direct_comparison",
            kpi=KPI_LABELS[key][0].lower(),
            value=format_value(key, kpis[key], currency),
            direct=format_value(key, direct[key], currency),
        )
        for key in ("close_rate", "avg_deal_size", "sales_cycle_days")
        if kpis[key] is not None and direct[key] is not None
    ]
    if comparisons:
        lines.append(word("terminal.against_direct", comparisons="; ".join(comparisons)))
    trust = details.trust
    shown = [
        word("terminal.doubt", count=getattr(trust, doubt), what=what)
        for doubt, what in word_table("terminal.doubts").items()
        if getattr(trust, doubt)
    ]
    doubts = "; ".join(shown) if shown else word("terminal.trust_clean")
    lines.append(word("terminal.trust", doubts=doubts))
    if details.sync_problem:
        lines.append(details.sync_problem)
    return "\n".join(lines)


def _span(period: dict[str, str]) -> str:
    last = date.fromisoformat(period["end"]) - timedelta(days=1)
    return word("terminal.span", start=period["start"], last=last.isoformat())

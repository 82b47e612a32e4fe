"""The demo program's goals.csv (kpi-spec.md section 9): a revenue goal for the quarter for
every partner that won revenue last quarter (110% of it, so most show a forecast and the
pipeline's coverage), and deal-count goals chosen from the deals themselves so that every
status appears as of the demo's date: met, missed (last quarter), on track, behind, at risk,
not started (next quarter) and no data (a close-rate goal of a partner with nothing closed in
the quarter yet). Deterministic: the same deals and date give the same rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from fractions import Fraction
from typing import Protocol

GOAL_FIELDS = ("partner_id", "kpi", "period", "target", "direction")


class DemoDeal(Protocol):
    @property
    def partner_id(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def closed_on(self) -> date | None: ...
    @property
    def amount_cents(self) -> int | None: ...
    @property
    def currency(self) -> str: ...


def _quarter(day: date, offset: int = 0) -> tuple[date, date, str]:
    index = day.year * 4 + (day.month - 1) // 3 + offset
    year, quarter = divmod(index, 4)
    start = date(year, quarter * 3 + 1, 1)
    end = date(year + (quarter + 1) // 4, (quarter + 1) % 4 * 3 + 1, 1)
    return start, end, f"{year}-Q{quarter + 1}"


def demo_goal_rows(
    partner_ids: Sequence[str],
    deals: Iterable[DemoDeal],
    as_of: date,
    rates: dict[str, float],
) -> list[list[str]]:
    start, end, name = _quarter(as_of)
    last_start, _, last_name = _quarter(as_of, -1)
    _, _, next_name = _quarter(as_of, 1)
    tomorrow = as_of + timedelta(days=1)
    won_now: dict[str, int] = {}
    closed_now: dict[str, int] = {}
    won_before: dict[str, int] = {}
    revenue_before: dict[str, float] = {}
    for deal in deals:
        pid, closed = deal.partner_id, deal.closed_on
        if pid is None or closed is None or deal.status == "open":
            continue
        won = deal.status == "won"
        if start <= closed < tomorrow:
            closed_now[pid] = closed_now.get(pid, 0) + 1
            won_now[pid] = won_now.get(pid, 0) + won
        if last_start <= closed < start and won:
            won_before[pid] = won_before.get(pid, 0) + 1
            rate = rates.get(deal.currency or "USD", 1.0 if deal.currency in ("", "USD") else 0)
            if deal.amount_cents is not None and rate:
                revenue_before[pid] = revenue_before.get(pid, 0.0) + deal.amount_cents / 100 * rate
    rows = [
        [pid, "won_revenue", name, f"{round(revenue_before[pid] * 1.1, -3):.0f}", ""]
        for pid in partner_ids
        if revenue_before.get(pid, 0.0) >= 1000
    ]
    elapsed = Fraction((min(tomorrow, end) - start).days, (end - start).days)
    used: set[str] = set()

    def pick(kind: str, target_of: object) -> None:
        for pid in partner_ids:
            if pid in used:
                continue
            target = _target(kind, won_now.get(pid, 0), elapsed, target_of)
            if target is not None:
                used.add(pid)
                rows.append([pid, "deal_count", name, str(target), ""])
                return

    for kind in ("met", "on_track", "behind", "at_risk"):
        pick(kind, None)
    missed = next((p for p in partner_ids if p not in used and won_before.get(p)), None)
    if missed is not None:
        rows.append([missed, "deal_count", last_name, str(won_before[missed] + 3), ""])
    if partner_ids:
        rows.append([partner_ids[0], "deal_count", next_name, "5", ""])
    idle = next((p for p in partner_ids if not closed_now.get(p)), None)
    if idle is not None:
        rows.append([idle, "close_rate", name, "0.3", ""])
    rows.append(["", "partners_joined", f"{as_of.year}", "6", ""])
    return rows


def _target(kind: str, won: int, elapsed: Fraction, _: object) -> int | None:
    """A whole deal-count target that gives `kind` for `won` deals so far, if one exists."""
    if elapsed >= 1 or won == 0:
        return None
    if kind == "met":
        return won
    candidates = {
        "on_track": int(won / elapsed),  # pace = won / (T x elapsed) >= 1
        "behind": int(won / (elapsed * Fraction(4, 5))),  # 0.8 <= pace < 1
        "at_risk": int(won / (elapsed * Fraction(1, 2))) + 1,  # pace < 0.5
    }
    target = candidates[kind]
    if target <= won:
        return None  # it would be met already
    pace = Fraction(won) / (target * elapsed)
    wanted = {
        "on_track": pace >= 1,
        "behind": Fraction(4, 5) <= pace < 1,
        "at_risk": pace < Fraction(4, 5),
    }
    return target if wanted[kind] else None

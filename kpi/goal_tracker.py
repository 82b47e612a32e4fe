"""The goal objects of kpi-spec.md section 9, computed by the engine.

`actual` is the engine's own per-range KPI computation (`KpiEngine.range_kpis`, and the
program's `kpis` for a program goal) over the goal's period to date, so every numeric key the
engine's `kpis` carry can be a goal. Goals that share a range share one grouped query; the open
deals of the revenue and deal goals are one grouped query per range, and their close rates one
query over last-365d.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import date, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select

from kpi import schema
from kpi.formulas import CUSTOMER_KEYS
from kpi.goal_progress import GoalSpec, OpenDeals, progress
from kpi.store import Store
from settings.periods import Period

d = schema.deals


class KpiEngine(Protocol):
    """What goals need of `kpi.engine.KpiEngine` (a protocol, so the two import one way)."""

    store: Store

    def range_kpis(
        self,
        period: Period,
        partner_ids: Sequence[str],
        refresh: bool = True,
        customers: bool = True,
        keys: Collection[str] | None = None,
    ) -> dict[str, dict[str, Any]]: ...

    def close_rates(
        self, period: Period, partner_ids: Sequence[str]
    ) -> dict[str, float | None]: ...

    def refresh_rollups(self) -> None: ...

    def program_kpis(self, period: Period, customers: bool = True) -> dict[str, Any]: ...


def goal_objects(
    engine: KpiEngine, goals: Sequence[GoalSpec], as_of: date, names: dict[str, str]
) -> list[dict[str, Any]]:
    """One object per goal, in the order given: the goal's fields, then every key of the
    table of section 9."""
    if not goals:
        return []
    engine.refresh_rollups()  # once, for every range below
    actuals = _actuals(engine, goals, as_of)
    forecasting = [g for g in goals if g.forecasts]
    opens = _open_deals(engine, forecasting, as_of)
    rates = _close_rates(engine, forecasting, as_of)
    no_deals = OpenDeals()
    # many goals share one period: its texts and open window once (by identity: cheaper
    # than a Period's hash, and equal periods give equal values)
    shared: dict[int, tuple[str, str, date, date]] = {}
    result = []
    for index, goal in enumerate(goals):
        key = goal.partner_id
        period = goal.period
        dates = shared.get(id(period))
        if dates is None:
            dates = shared[id(period)] = (
                period.start.isoformat(),
                period.end.isoformat(),
                *goal.open_window(as_of),
            )
        # only a forecasting goal reads its open deals
        found = opens.get((key, dates[2], dates[3])) if goal.forecasts else None
        values = progress(goal, as_of, actuals.get(index), found or no_deals, rates.get(key or ""))
        partner = None if key is None else {"id": key, "name": names.get(key, key)}
        result.append(
            {
                "partner": partner,
                "kpi": goal.kpi,
                "period": {"name": period.name, "start": dates[0], "end": dates[1]},
                "target": float(goal.target),
                "direction": goal.direction.value,
                **values,
            }
        )
    return result


def _actuals(engine: KpiEngine, goals: Sequence[GoalSpec], as_of: date) -> dict[int, Any]:
    """Each started goal's KPI over its period to date, by the goal's index: per range, only
    the keys its goals name."""
    by_range: dict[tuple[date, date], list[int]] = defaultdict(list)
    periods: dict[tuple[date, date], Period] = {}
    to_dates: dict[Period, Period | None] = {}  # many goals share one period
    for index, goal in enumerate(goals):
        if goal.period not in to_dates:
            to_dates[goal.period] = goal.to_date(as_of)
        to_date = to_dates[goal.period]
        if to_date is not None:
            span = (to_date.start, to_date.end)
            by_range[span].append(index)
            periods[span] = to_date
    actuals: dict[int, Any] = {}
    for span, indexes in by_range.items():
        period = periods[span]
        partner_ids = sorted({p for i in indexes if (p := goals[i].partner_id) is not None})
        customers = any(goals[i].kpi in CUSTOMER_KEYS for i in indexes)
        keys = {goals[i].kpi for i in indexes if goals[i].partner_id is not None}
        kpis = (
            engine.range_kpis(period, partner_ids, refresh=False, customers=customers, keys=keys)
            if partner_ids
            else {}
        )
        program = None
        for index in indexes:
            goal = goals[index]
            if goal.partner_id is None:
                program = program or engine.program_kpis(period, customers=customers)
                actuals[index] = program.get(goal.kpi)
            else:
                actuals[index] = kpis.get(goal.partner_id, {}).get(goal.kpi)
    return actuals


def _open_deals(
    engine: KpiEngine, goals: Sequence[GoalSpec], as_of: date
) -> dict[tuple[str | None, date, date], OpenDeals]:
    """O per (partner, window): open deals created by D expected to close in the window."""
    windows: dict[tuple[date, date], set[str]] = defaultdict(set)
    by_period: dict[int, tuple[date, date]] = {}  # goals share few periods
    for goal in goals:
        if goal.partner_id is not None:
            window = by_period.get(id(goal.period))
            if window is None:
                window = by_period[id(goal.period)] = goal.open_window(as_of)
            windows[window].add(goal.partner_id)
    found: dict[tuple[str | None, date, date], OpenDeals] = {}
    with engine.store.engine.connect() as connection:
        for (low, high), partner_ids in windows.items():
            if low >= high:
                continue
            query = (
                select(d.c.partner_id, func.count(), func.sum(d.c.amount))
                .where(
                    schema.OPEN_DEAL,  # a literal: the partial index ix_deals_partner_open
                    d.c.created_on <= as_of,
                    d.c.expected_close_on >= low,
                    d.c.expected_close_on < high,
                    d.c.partner_id.in_(sorted(partner_ids)),
                )
                .group_by(d.c.partner_id)
            )
            for partner_id, count, amount in connection.execute(query):
                found[(partner_id, low, high)] = OpenDeals(int(count), float(amount or 0.0))
    return found


def _close_rates(
    engine: KpiEngine, goals: Sequence[GoalSpec], as_of: date
) -> dict[str, float | None]:
    """The partners' close rates over last-365d as of D, `[D - 364, D + 1)`."""
    partner_ids = sorted({g.partner_id for g in goals if g.partner_id is not None})
    if not partner_ids:
        return {}
    end = as_of + timedelta(days=1)
    year = Period("last-365d", end - timedelta(days=365), end)
    return engine.close_rates(year, partner_ids)

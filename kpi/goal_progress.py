"""How far a goal has come (kpi-spec.md section 9): the keys of a goal object from its actual
value, the as-of date and, for a revenue or deal goal, the open deals expected to close in it.

Pure arithmetic on numbers the engine computed in SQL. Every ratio is taken exactly on the
inputs' integer ratios (`as_integer_ratio`) and rounded once into a float by one int division,
the value `float(Fraction(...))` gives without a `Fraction` per step; every status comparison
is exact (pace >= 1 is actual * (e - s) >= target * elapsed days), so a pace of exactly 1 or 0.8
is never lost to floating-point division.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from settings.goals import ADDITIVE_KPIS, FORECAST_KPIS, Direction
from settings.periods import Period

Number = int | float
Ratio = tuple[int, int]  # (numerator, denominator > 0): an exact value


@dataclass(frozen=True)
class GoalSpec:
    """One goal as read from its source, its partner resolved (None: the program)."""

    partner_id: str | None
    kpi: str
    period: Period  # `name` as written in the goal
    target: Decimal
    direction: Direction
    source: str  # "files" (or a CRM's secondary folder), "app.yaml" or "slack"
    set_by: str | None = None

    @property
    def additive(self) -> bool:
        return self.kpi in ADDITIVE_KPIS

    @property
    def forecasts(self) -> bool:
        """A partner's `at_least` goal on won revenue or deals: it gets a forecast."""
        return (
            self.partner_id is not None
            and self.direction is Direction.AT_LEAST
            and self.kpi in FORECAST_KPIS
        )

    def to_date(self, as_of: date) -> Period | None:
        """`[s, min(e, D + 1))`, the range `actual` is computed over; None before it starts."""
        if as_of < self.period.start:
            return None
        end = min(self.period.end, as_of + timedelta(days=1))
        return Period(f"{self.period.start}..{end - timedelta(days=1)}", self.period.start, end)

    def open_window(self, as_of: date) -> tuple[date, date]:
        """`[max(D + 1, s), e)`: where an open deal's expected close date puts it in the goal."""
        return max(as_of + timedelta(days=1), self.period.start), self.period.end


@dataclass(frozen=True)
class OpenDeals:
    """O of section 9: the partner's open deals expected to close in the rest of the period."""

    count: int = 0
    amount: float = 0.0  # Σ amount, null amounts skipped


def progress(
    goal: GoalSpec,
    as_of: date,
    actual: Number | None,
    open_deals: OpenDeals | None = None,
    close_rate: float | None = None,
) -> dict[str, Any]:
    """Every key of section 9's table for `goal` as of `as_of`; `actual` is the KPI over
    `goal.to_date(as_of)` (ignored before the period starts), `open_deals` and `close_rate`
    (last-365d as of D) are read only for a goal that `forecasts`."""
    s, e = goal.period.start, goal.period.end
    total = (e - s).days
    next_day = as_of + timedelta(days=1)
    elapsed_days = (min(max(next_day, s), e) - s).days
    if as_of < s:
        actual = None
    tn, td = goal.target.as_integer_ratio()  # target = tn / td, td > 0
    exact = None if actual is None else actual.as_integer_ratio()
    additive = goal.additive  # each property once: every partner's cards carry 6,000 goals
    values: dict[str, Any] = {
        "elapsed": elapsed_days / total,
        "actual": actual,
        "attainment": None if exact is None or tn == 0 else _float(exact[0] * td, exact[1] * tn),
        "expected": None,
        "pace": None,
        "projected": None,
        "open_expected": None,
        "forecast": None,
        "coverage": None,
    }
    if additive:
        values["expected"] = _float(tn * elapsed_days, td * total)  # target * elapsed
        if exact is not None and tn != 0 and elapsed_days != 0:
            an, ad = exact  # actual / expected
            values["pace"] = _float(an * td * total, ad * tn * elapsed_days)
        if exact is not None and elapsed_days != 0:
            values["projected"] = _float(exact[0] * total, exact[1] * elapsed_days)
    if goal.forecasts:
        values.update(_forecast(goal, exact, (tn, td), open_deals or OpenDeals(), close_rate))
    values["status"] = _status(goal, additive, next_day, exact, (tn, td), elapsed_days, total)
    return values


def _float(numerator: int, denominator: int) -> float:
    """numerator / denominator rounded once, as `float(Fraction(numerator, denominator))`
    (Python's int division is correctly rounded; the sign goes to the numerator, so a zero
    is 0.0 as the Fraction's, not -0.0)."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    return numerator / denominator


def _forecast(
    goal: GoalSpec,
    actual: Ratio | None,
    target: Ratio,
    open_deals: OpenDeals,
    close_rate: float | None,
) -> dict[str, Any]:
    open_expected: Number = open_deals.count if goal.kpi == "deal_count" else open_deals.amount
    forecast: float | None = None
    on, od = open_expected.as_integer_ratio()
    if actual is not None:
        an, ad = actual
        if open_deals.count == 0:
            forecast = _float(an, ad)
        elif close_rate is not None:
            cn, cd = close_rate.as_integer_ratio()  # actual + open_expected * close_rate
            forecast = _float(an * od * cd + on * cn * ad, ad * od * cd)
    coverage = None
    if actual is not None:
        (an, ad), (tn, td) = actual, target
        left = tn * ad - an * td  # (target - actual) * ad * td
        if left > 0:
            coverage = _float(on * td * ad, od * left)
    return {"open_expected": open_expected, "forecast": forecast, "coverage": coverage}


def _status(
    goal: GoalSpec,
    additive: bool,
    next_day: date,
    actual: Ratio | None,
    target: Ratio,
    elapsed_days: int,
    total: int,
) -> str:
    """Section 9's status as of the day before `next_day`, every comparison on integers (both
    denominators are positive); `additive` is `goal.additive`."""
    if next_day <= goal.period.start:  # as_of < start
        return "not_started"
    if actual is None:
        return "no_data"
    (an, ad), (tn, td) = actual, target
    a, t = an * td, tn * ad  # actual and target over one common positive denominator
    at_least = goal.direction is Direction.AT_LEAST
    meets = a >= t if at_least else a <= t
    if additive and at_least and a >= t:
        return "met"
    if additive and not at_least and a > t:
        return "missed"
    if next_day >= goal.period.end:
        return "met" if meets else "missed"
    if additive and at_least:
        expected_days = t * elapsed_days  # pace = actual * total / (target * elapsed days)
        if expected_days == 0:
            return "at_risk"
        if a * total >= expected_days:
            return "on_track"
        return "behind" if 5 * a * total >= 4 * expected_days else "at_risk"
    if additive:
        return "on_track" if a * total <= t * elapsed_days else "behind"
    return "on_track" if meets else "behind"

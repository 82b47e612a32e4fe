"""The goals' fast path equals the per-goal computation it replaced (issue #18): `progress` on
integer ratios equals the same keys taken with a `Fraction` per step, and a range that reads
only the keys its goals name (no survey query unless one is named) gives every goal the actual
of that partner's full `kpis` over the goal's range, on random programs (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpi import goal_tracker
from kpi.engine import KpiEngine
from kpi.goal_progress import GoalSpec, OpenDeals, progress
from settings.app import AppConfig
from settings.goals import ADDITIVE_KPIS, Direction
from settings.periods import Period
from settings.vocab import PARTNER_KPI_KEYS, PROGRAM_ONLY_KPI_KEYS
from tests.budget import examples
from tests.kpi_reference import Dataset
from tests.test_kpi_engine import fresh_store, load, programs

# --- the reference: section 9's arithmetic with a Fraction per step (the code before) ------


def progress_with_fractions(
    goal: GoalSpec,
    as_of: date,
    actual: int | float | None,
    open_deals: OpenDeals | None = None,
    close_rate: float | None = None,
) -> dict[str, Any]:
    s, e = goal.period.start, goal.period.end
    total = (e - s).days
    elapsed_days = (min(max(as_of + timedelta(days=1), s), e) - s).days
    elapsed = Fraction(elapsed_days, total)
    if as_of < s:
        actual = None
    target = Fraction(goal.target)
    exact = None if actual is None else Fraction(actual)
    values: dict[str, Any] = {
        "elapsed": float(elapsed),
        "actual": actual,
        "attainment": None if exact is None or target == 0 else float(exact / target),
    } | dict.fromkeys(("expected", "pace", "projected", "open_expected", "forecast", "coverage"))
    if goal.additive:
        expected = target * elapsed
        values["expected"] = float(expected)
        if exact is not None and expected != 0:
            values["pace"] = float(exact / expected)
        if exact is not None and elapsed != 0:
            values["projected"] = float(exact / elapsed)
    if goal.forecasts:
        opens = open_deals or OpenDeals()
        open_expected = opens.count if goal.kpi == "deal_count" else opens.amount
        forecast = None
        if exact is not None:
            if opens.count == 0:
                forecast = float(exact)
            elif close_rate is not None:
                forecast = float(exact + Fraction(open_expected) * Fraction(close_rate))
        left = None if exact is None else target - exact
        coverage = None if left is None or left <= 0 else float(Fraction(open_expected) / left)
        values.update(open_expected=open_expected, forecast=forecast, coverage=coverage)
    values["status"] = _status_with_fractions(goal, as_of, exact, target, elapsed)
    return values


def _status_with_fractions(
    goal: GoalSpec, as_of: date, actual: Fraction | None, target: Fraction, elapsed: Fraction
) -> str:
    """Section 9's status in the spec's words, pace as an exact Fraction."""
    if as_of < goal.period.start:
        return "not_started"
    if actual is None:
        return "no_data"
    at_least = goal.direction is Direction.AT_LEAST
    reached = actual >= target if at_least else actual <= target
    over = as_of + timedelta(days=1) >= goal.period.end
    expected = target * elapsed
    pace = None if expected == 0 else actual / expected
    if not goal.additive:
        return ("met" if reached else "missed") if over else ("on_track" if reached else "behind")
    if at_least and actual >= target:
        return "met"
    if not at_least and actual > target:
        return "missed"
    if over:
        return "met" if reached else "missed"
    if not at_least:
        return "on_track" if actual <= expected else "behind"
    if pace is not None and pace >= 1:
        return "on_track"
    return "behind" if pace is not None and pace >= Fraction(4, 5) else "at_risk"


def same(actual: Any, expected: Any) -> None:
    """Equal, and equal as JSON: the same int or float, the same sign of a zero."""
    assert actual == expected
    assert json.dumps(actual, sort_keys=True) == json.dumps(expected, sort_keys=True)


# --- progress alone --------------------------------------------------------------------------

START = date(2026, 10, 1)
GOAL_KEYS = sorted(PARTNER_KPI_KEYS)

#: Numbers near the status boundaries and the ones a float cannot hold exactly.
awkward = st.sampled_from(["0", "0.1", "0.2", "0.3", "1", "1e-7", "920", "736", "123456789.123"])
decimals = st.one_of(
    awkward.map(Decimal),
    st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False),
    st.floats(-1e9, 1e9, allow_nan=False).map(Decimal),
)


@st.composite
def goal_cases(draw: st.DrawFn) -> tuple[GoalSpec, date, Any, OpenDeals, float | None]:
    kpi = draw(st.sampled_from(GOAL_KEYS))
    days = draw(st.integers(1, 400))
    period = Period(f"span{days}", START, START + timedelta(days=days))
    target = draw(decimals)
    if kpi in ADDITIVE_KPIS:
        target = abs(target)
    partner = draw(st.sampled_from(["P1", None]))
    goal = GoalSpec(partner, kpi, period, target, draw(st.sampled_from(Direction)), "files")
    as_of = START + timedelta(days=draw(st.integers(-3, days + 3)))
    # an actual on the target's scale (so every status is reached), or any number, or null
    scaled = st.integers(0, 2000).map(lambda n: float(target) * n / 1000)
    actual = draw(
        st.one_of(
            st.none(),
            st.sampled_from([0, 0.0, -0.0]),
            scaled,
            scaled.map(round),
            st.integers(-(10**12), 10**12),
            st.floats(-1e12, 1e12, allow_nan=False),
        )
    )
    count = draw(st.integers(0, 5))
    opens = OpenDeals(count, draw(st.floats(0, 1e9)) if count else 0.0)
    rate = draw(st.one_of(st.none(), st.floats(0, 1), st.sampled_from([0.1, 1 / 3, 0.8])))
    return goal, as_of, actual, opens, rate


def outcome(function: Any, case: tuple[Any, ...]) -> Any:
    """What `function(*case)` gives, or the kind of error it raises (a ratio too large for a
    float overflows in both)."""
    try:
        return function(*case)
    except ArithmeticError as error:
        return type(error).__name__


@settings(max_examples=examples(1000), deadline=None)
@given(case=goal_cases())
def test_progress_equals_the_fraction_arithmetic(
    case: tuple[GoalSpec, date, Any, OpenDeals, float | None],
) -> None:
    same(outcome(progress, case), outcome(progress_with_fractions, case))


# --- the goals of a store --------------------------------------------------------------------


def per_goal_actuals(
    engine: goal_tracker.KpiEngine, goals: list[GoalSpec], as_of: date
) -> dict[int, Any]:
    """The computation before: each goal's partner's full `kpis` (surveys, customers and
    all) over the goal's range to date, one goal at a time."""
    actuals = {}
    for index, goal in enumerate(goals):
        to_date = goal.to_date(as_of)
        if to_date is None:
            continue
        if goal.partner_id is None:
            actuals[index] = engine.program_kpis(to_date).get(goal.kpi)
        else:
            kpis = engine.range_kpis(to_date, [goal.partner_id])[goal.partner_id]
            actuals[index] = kpis.get(goal.kpi)
    return actuals


@st.composite
def goal_books(draw: st.DrawFn) -> tuple[Dataset, AppConfig, date, list[GoalSpec]]:
    """A random program, and goals of its partners (and the program) over a few ranges."""
    data, app, period = draw(programs())
    as_of = period.end - timedelta(days=1)
    ranges = [
        period,
        Period("to-date", period.start - timedelta(days=40), as_of + timedelta(days=30)),
        Period("later", as_of + timedelta(days=2), as_of + timedelta(days=60)),
        Period("over", period.start - timedelta(days=90), period.start - timedelta(days=1)),
    ]
    ids = [partner.id for partner in data.partners]
    goals = []
    for _ in range(draw(st.integers(1, 14))):
        partner = draw(st.sampled_from([*ids, None]))
        keys = GOAL_KEYS if partner is not None else sorted(PROGRAM_ONLY_KPI_KEYS)
        kpi = draw(st.sampled_from(keys))
        target = Decimal(draw(st.sampled_from(["0", "0.5", "3", "1500", "0.1"])))
        direction = draw(st.sampled_from(Direction))
        goals.append(
            GoalSpec(partner, kpi, draw(st.sampled_from(ranges)), target, direction, "files")
        )
    return data, app, as_of, goals


@settings(max_examples=examples(16), deadline=None, suppress_health_check=list(HealthCheck))
@given(book=goal_books())
def test_goal_objects_equal_the_per_goal_computation(
    database_url: str,
    book: tuple[Dataset, AppConfig, date, list[GoalSpec]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, app, as_of, goals = book
    names = {partner.id: partner.name for partner in data.partners}
    with fresh_store(database_url) as store:
        load(store, data)
        engine = KpiEngine(store, app.kpi_settings)
        fast = goal_tracker.goal_objects(engine, goals, as_of, names)
        with monkeypatch.context() as patched:
            patched.setattr(goal_tracker, "_actuals", per_goal_actuals)
            patched.setattr(goal_tracker, "progress", progress_with_fractions)
            before = goal_tracker.goal_objects(engine, goals, as_of, names)
    same(fast, before)

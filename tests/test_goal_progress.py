"""Every key and status of kpi-spec.md section 9, worked by hand on the goal's arithmetic.

The period is 2026-Q4, [2026-10-01, 2027-01-01): 92 days. As of 2026-11-15 the days on or
before D are 10-01..11-15, 46 of them, so elapsed is exactly 1/2; as of 10-01 it is 1/92.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from kpi.goal_progress import GoalSpec, OpenDeals, progress
from settings.goals import Direction
from settings.periods import Period

Q4 = Period("2026-Q4", date(2026, 10, 1), date(2027, 1, 1), "quarter")
MID = date(2026, 11, 15)  # elapsed 46/92 = 1/2


def goal(
    kpi: str = "won_revenue",
    target: str = "920",
    direction: Direction = Direction.AT_LEAST,
    partner: str | None = "p1",
) -> GoalSpec:
    return GoalSpec(partner, kpi, Q4, Decimal(target), direction, "files")


def test_the_day_before_the_period_is_not_started() -> None:
    values = progress(goal(), date(2026, 9, 30), actual=999)
    assert values == {
        "elapsed": 0.0,
        "actual": None,  # null before the period starts, whatever was passed
        "attainment": None,
        "expected": 0.0,
        "pace": None,
        "projected": None,
        "open_expected": 0.0,
        "forecast": None,
        "coverage": None,
        "status": "not_started",
    }


def test_its_first_day_counts_one_day_and_pace_exactly_one_is_on_track() -> None:
    values = progress(goal(), date(2026, 10, 1), actual=10)
    assert values["elapsed"] == 1 / 92
    assert values["expected"] == 10.0  # 920 x 1/92
    assert values["pace"] == 1.0
    assert values["projected"] == 920.0  # 10 / (1/92)
    assert values["attainment"] == 10 / 920
    assert values["status"] == "on_track"


@pytest.mark.parametrize(
    ("actual", "pace", "status"),
    [
        (460, 1.0, "on_track"),
        (368, 0.8, "behind"),
        (367, 367 / 460, "at_risk"),
        (0, 0.0, "at_risk"),
    ],
)
def test_pace_mid_period(actual: int, pace: float, status: str) -> None:
    values = progress(goal(), MID, actual=actual)
    assert values["elapsed"] == 0.5
    assert values["expected"] == 460.0
    assert values["pace"] == pace
    assert values["projected"] == actual * 2.0
    assert values["status"] == status


def test_pace_is_compared_exactly_where_floats_would_round() -> None:
    """As of 10-27 (27 of 92 days) a target of 92 expects exactly 27. In floats,
    27 / (92 x (27/92)) is 0.9999999999999999, so plain division would say "behind"; the exact
    comparison 27 x 92 >= 92 x 27 says on track."""
    assert 27 / (92 * (27 / 92)) < 1  # the trap this test is about
    values = progress(goal(kpi="deal_count", target="92"), date(2026, 10, 27), actual=27)
    assert values["status"] == "on_track"
    assert values["pace"] == 1.0  # rounded once, from the exact quotient


def test_its_last_day_ends_the_period() -> None:
    last = date(2026, 12, 31)
    assert progress(goal(), last, actual=900)["elapsed"] == 1.0
    assert progress(goal(), last, actual=900)["status"] == "missed"
    assert progress(goal(), last, actual=920)["status"] == "met"


def test_after_the_period_elapsed_stays_one() -> None:
    values = progress(goal(), date(2027, 1, 5), actual=1000)
    assert values["elapsed"] == 1.0
    assert values["expected"] == 920.0
    assert values["projected"] == 1000.0
    assert values["status"] == "met"


def test_an_additive_at_least_goal_is_met_as_soon_as_reached() -> None:
    assert progress(goal(), date(2026, 10, 2), actual=920)["status"] == "met"


def test_a_target_of_zero() -> None:
    values = progress(goal(target="0"), MID, actual=0)
    assert values["attainment"] is None
    assert values["expected"] == 0.0
    assert values["pace"] is None
    assert values["status"] == "met"  # an additive actual is never below 0
    assert progress(goal(kpi="close_rate", target="0"), MID, actual=0.0)["status"] == "on_track"


def test_an_at_most_additive_goal() -> None:
    ceiling = goal(kpi="deal_count", target="5", direction=Direction.AT_MOST)
    assert progress(ceiling, MID, actual=2)["status"] == "on_track"  # 2 <= 2.5 expected
    assert progress(ceiling, MID, actual=3)["status"] == "behind"  # 3 > 2.5
    assert progress(ceiling, MID, actual=6)["status"] == "missed"  # exceeded mid-period
    assert progress(ceiling, date(2026, 12, 31), actual=5)["status"] == "met"
    assert progress(ceiling, MID, actual=2)["forecast"] is None  # at_most: no forecast


def test_other_keys_are_never_met_before_the_end() -> None:
    rate = goal(kpi="close_rate", target="0.5")
    values = progress(rate, MID, actual=0.6)
    assert values["status"] == "on_track"
    assert values["attainment"] == pytest.approx(1.2, rel=1e-15)
    assert (values["expected"], values["pace"], values["projected"]) == (None, None, None)
    assert progress(rate, MID, actual=0.4)["status"] == "behind"
    assert progress(rate, date(2026, 12, 31), actual=0.5)["status"] == "met"
    assert progress(rate, date(2026, 12, 31), actual=0.4)["status"] == "missed"
    cycle = goal(kpi="sales_cycle_days", target="40", direction=Direction.AT_MOST)
    assert progress(cycle, MID, actual=66.0)["status"] == "behind"
    assert progress(cycle, MID, actual=30.0)["status"] == "on_track"
    assert progress(cycle, date(2027, 2, 1), actual=40.0)["status"] == "met"


def test_no_data_when_the_kpi_has_no_value() -> None:
    values = progress(goal(kpi="close_rate", target="0.5"), MID, actual=None)
    assert values["status"] == "no_data"
    assert values["attainment"] is None


def test_forecast_and_coverage_of_a_deal_goal() -> None:
    deals = goal(kpi="deal_count", target="10")
    values = progress(deals, MID, actual=4, open_deals=OpenDeals(3, 900.0), close_rate=0.5)
    assert values["open_expected"] == 3  # deals, not their amount
    assert values["forecast"] == 5.5  # 4 + 3 x 0.5, not rounded
    assert values["coverage"] == 0.5  # 3 / (10 - 4)


def test_forecast_of_a_revenue_goal_skips_null_amounts() -> None:
    values = progress(goal(), MID, actual=300, open_deals=OpenDeals(2, 1000.0), close_rate=0.25)
    assert values["open_expected"] == 1000.0
    assert values["forecast"] == 550.0  # 300 + 1000 x 0.25
    assert values["coverage"] == 1000 / 620  # 1000 / (920 - 300)


def test_forecast_with_no_close_rate() -> None:
    values = progress(goal(), MID, actual=300, open_deals=OpenDeals(1, 200.0), close_rate=None)
    assert values["forecast"] is None  # O is not empty and there is no rate
    assert values["coverage"] == 200 / 620
    empty = progress(goal(), MID, actual=300, open_deals=OpenDeals(), close_rate=None)
    assert empty["forecast"] == 300.0  # O is empty: the forecast is the actual
    assert empty["open_expected"] == 0.0
    assert empty["coverage"] == 0.0


def test_coverage_when_the_target_is_already_met() -> None:
    values = progress(goal(), MID, actual=1000, open_deals=OpenDeals(1, 50.0), close_rate=1.0)
    assert values["coverage"] is None  # nothing is left
    assert values["forecast"] == 1050.0
    assert values["status"] == "met"


def test_program_goals_get_no_forecast() -> None:
    values = progress(goal(kpi="won_revenue", partner=None), MID, actual=300)
    assert (values["open_expected"], values["forecast"], values["coverage"]) == (None,) * 3
    assert values["pace"] == 300 / 460

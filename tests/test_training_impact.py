"""Training impact (kpi-spec.md section 8), worked by hand.

The period is 2026-Q3, [07-01, 10-01). Partner T's latest completion before 10-01 is on 09-03
(two courses that day; a third on 10-01 is the period's end, so it does not count): its before
window is [06-05, 09-03) and its after window [09-03, 12-02), 90 days each.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from kpi.engine import KpiEngine
from kpi.models import Deal, DealStatus, Partner, TrainingCompletion
from kpi.store import Store
from settings.app import AppConfig
from settings.periods import parse_period
from tests.kpi_reference import Dataset
from tests.test_kpi_engine import assert_engine_equals_reference, load


def d(text: str) -> date:
    return date.fromisoformat(text)


def deal(
    did: str, partner: str | None, status: str, created: str, closed: str, amount: int | None
) -> Deal:
    return Deal(
        id=did,
        partner_id=partner,
        status=DealStatus(status),
        created_on=d(created),
        closed_on=d(closed),
        amount=None if amount is None else Decimal(amount),
    )


def course(partner: str, name: str, on: str) -> TrainingCompletion:
    return TrainingCompletion(partner_id=partner, course=name, completed_on=d(on))


def program() -> Dataset:
    partners = [
        Partner(id="T", name="Trained", joined_on=d("2025-01-01")),
        Partner(id="U", name="Untrained", joined_on=d("2025-01-01")),
        Partner(id="V", name="Trained on the end", joined_on=d("2025-01-01")),
        Partner(id="W", name="Trained a year ago", joined_on=d("2025-01-01")),
        Partner(id="W2", name="Trained a year and a day ago", joined_on=d("2025-01-01")),
        Partner(id="X", name="Left", joined_on=d("2025-01-01"), left_on=d("2026-09-01")),
    ]
    trainings = [
        course("T", "Basics", "2026-05-01"),
        course("T", "Pricing", "2026-09-03"),
        course("T", "Onboarding", "2026-09-03"),  # the first by name on the latest day
        course("T", "Later", "2026-10-01"),  # on the period's end: not before it
        course("V", "Pricing", "2026-10-01"),
        course("W", "Pricing", "2025-10-01"),  # e - 365 days: trained
        course("W2", "Pricing", "2025-09-30"),  # e - 366 days: untrained
        course("X", "Pricing", "2026-08-01"),  # not active at e: in neither group
    ]
    deals = [
        deal("b1", "T", "won", "2026-05-06", "2026-06-05", 1000),  # before window's first day
        deal("b2", "T", "lost", "2026-08-01", "2026-09-02", 50),
        deal("b3", "T", "won", "2026-05-01", "2026-06-04", 9999),  # a day too early
        deal("b4", "T", "won", "2026-08-23", "2026-09-02", None),  # no amount, 10 days
        deal("a1", "T", "won", "2026-09-01", "2026-09-03", 500),  # on t: after
        deal("a2", "T", "won", "2026-11-01", "2026-12-01", 700),  # after window's last day
        deal("a3", "T", "won", "2026-11-01", "2026-12-02", 9999),  # a day too late
        deal("a4", "T", "lost", "2026-09-10", "2026-10-15", 80),
        deal("u1", "U", "lost", "2026-07-01", "2026-07-15", 100),
        deal("v1", "V", "won", "2026-09-20", "2026-09-30", 200),
        deal("w1", "W", "won", "2026-07-22", "2026-08-01", 300),
        deal("x1", "X", "won", "2026-07-01", "2026-08-01", 10000),
        deal("g1", "GHOST", "won", "2026-07-01", "2026-08-01", 10000),
    ]
    return Dataset(partners=partners, deals=deals, trainings=trainings)


def q3(as_of: str) -> Any:
    return parse_period("2026-Q3", d(as_of))


@pytest.fixture
def engine(store: Store) -> KpiEngine:
    load(store, program())
    return KpiEngine(store, AppConfig().kpi_settings)


def test_before_and_after_the_latest_course(engine: KpiEngine) -> None:
    assert engine.partner("T", q3("2026-10-15"))["training"] == {
        "course": "Onboarding",
        "completed_on": "2026-09-03",
        "before": {  # b1, b2, b4
            "deal_count": 2,
            "won_revenue": 1000.0,
            "avg_deal_size": 1000.0,  # b4 has no amount
            "close_rate": pytest.approx(2 / 3),
            "sales_cycle_days": 20.0,  # (30 + 10) / 2
        },
        "after": {  # a1, a2, a4
            "deal_count": 2,
            "won_revenue": 1200.0,
            "avg_deal_size": 600.0,
            "close_rate": pytest.approx(2 / 3),
            "sales_cycle_days": 16.0,  # (2 + 30) / 2
        },
        "after_days": 43,  # 09-03 .. 10-15
    }


@pytest.mark.parametrize(
    ("as_of", "after_days"),
    [("2026-09-02", 0), ("2026-09-03", 1), ("2026-12-01", 90), ("2027-01-01", 90)],
)
def test_after_days_counts_the_after_window_up_to_the_as_of_date(
    engine: KpiEngine, as_of: str, after_days: int
) -> None:
    training = engine.partner("T", q3(as_of))["training"]
    assert training["completed_on"] == "2026-09-03" and training["after_days"] == after_days


def test_no_completion_before_the_end_is_null(engine: KpiEngine) -> None:
    period = q3("2026-10-15")
    assert engine.partner("U", period)["training"] is None
    assert engine.partner("V", period)["training"] is None  # completed on e
    every = engine.all_partners(period)
    assert every["T"]["training"] == engine.partner("T", period)["training"]
    assert every["V"]["training"] is None


def test_an_empty_window_has_zeros_and_nulls(engine: KpiEngine) -> None:
    training = engine.partner("W", q3("2026-10-15"))["training"]
    assert training["course"] == "Pricing" and training["after_days"] == 90
    assert training["before"] == {
        "deal_count": 0,
        "won_revenue": 0.0,
        "avg_deal_size": None,
        "close_rate": None,
        "sales_cycle_days": None,
    }


def test_the_program_compares_trained_and_untrained_partners(engine: KpiEngine) -> None:
    training = engine.program(q3("2026-10-15"))["training"]
    assert training == {
        "trained": {  # T and W; T's b2, b4, a1 and W's w1 closed in Q3
            "partners": 2,
            "won_revenue_per_partner": 400.0,
            "deal_count": 3,
            "won_revenue": 800.0,
            "avg_deal_size": 400.0,
            "close_rate": 0.75,
            "sales_cycle_days": pytest.approx(22 / 3),  # (10 + 2 + 10) / 3
        },
        "untrained": {  # U, V and W2; X left, GHOST is nobody's
            "partners": 3,
            "won_revenue_per_partner": pytest.approx(200 / 3),
            "deal_count": 1,
            "won_revenue": 200.0,
            "avg_deal_size": 200.0,
            "close_rate": 0.5,
            "sales_cycle_days": 10.0,
        },
    }


def test_a_group_without_partners_is_null_per_partner(engine: KpiEngine) -> None:
    training = engine.program(parse_period("2024-Q1", d("2026-10-15")))["training"]
    for group in training.values():
        assert group["partners"] == 0 and group["won_revenue_per_partner"] is None
        assert group["won_revenue"] == 0.0 and group["close_rate"] is None


def test_the_reference_agrees(engine: KpiEngine) -> None:
    for as_of in ("2026-09-02", "2026-10-15"):
        assert_engine_equals_reference(engine, program(), AppConfig(), q3(as_of))

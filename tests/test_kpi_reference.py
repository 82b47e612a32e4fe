"""The reference implementation of the KPIs (tests/kpi_reference.py) on tiny hand-made data.

Every expected number is worked out by hand in the comments next to it. The datasets are the
`SCENARIOS`, which tests/test_kpi_engine.py also loads into a real store to hold the SQL engine to
the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from kpi.models import (
    Channel,
    Deal,
    DealStatus,
    DealType,
    Partner,
    StageChange,
    SurveyResponse,
    TrainingCompletion,
)
from settings.app import AppConfig
from settings.kpi import KpiConfig, KpiWeights
from settings.periods import Period, parse_period
from tests.kpi_reference import (
    CHANNELS,
    KPI_KEYS,
    PROGRAM_KEYS,
    Dataset,
    reference_partner,
    reference_program,
)

AS_OF = date(2026, 11, 22)

# --- record builders ---------------------------------------------------------------------------


def partner(pid: str, joined: str = "2025-01-01", left: str | None = None) -> Partner:
    return Partner(
        id=pid,
        name=f"Partner {pid}",
        joined_on=date.fromisoformat(joined),
        left_on=date.fromisoformat(left) if left else None,
    )


def deal(
    did: str,
    pid: str | None,
    status: str,
    created: str,
    closed: str | None = None,
    amount: int | None = None,
    **fields: Any,
) -> Deal:
    return Deal(
        id=did,
        partner_id=pid,
        name=f"Deal {did}",
        amount=Decimal(amount) if amount is not None else None,
        status=DealStatus(status),
        created_on=date.fromisoformat(created),
        closed_on=date.fromisoformat(closed) if closed else None,
        **fields,
    )


def change(deal_id: str, stage: str, at: str) -> StageChange:
    """`at` is an ISO timestamp with its UTC offset."""
    return StageChange(deal_id=deal_id, stage=stage, entered_at=datetime.fromisoformat(at))


def training(pid: str, course: str, on: str) -> TrainingCompletion:
    return TrainingCompletion(partner_id=pid, course=course, completed_on=date.fromisoformat(on))


def answer(rid: str, pid: str, score: int, at: str) -> SurveyResponse:
    return SurveyResponse(
        id=rid, partner_id=pid, score=score, submitted_at=datetime.fromisoformat(at)
    )


def only_weights(**weights: float) -> AppConfig:
    """An app.yaml whose kpi.weights are exactly these (the others weigh 0)."""
    return AppConfig(kpi=KpiConfig(weights=KpiWeights(**weights)))


# --- the scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    data: Dataset
    app: AppConfig
    periods: tuple[Period, ...]


SCENARIOS: dict[str, Callable[[], Scenario]] = {}


def scenario(build: Callable[[], Scenario]) -> Callable[[], Scenario]:
    SCENARIOS[build.__name__] = build
    return build


Q3 = parse_period("2026-Q3", AS_OF)  # [2026-07-01, 2026-10-01); previous 2026-Q2
Q2 = parse_period("2026-Q2", AS_OF)  # [2026-04-01, 2026-07-01); previous 2026-Q1
Q1 = parse_period("2026-Q1", AS_OF)  # [2026-01-01, 2026-04-01); previous 2025-Q4


@scenario
def spec_example() -> Scenario:
    """One partner A in 2026-Q3, with the spec's won deals of 200 and 400."""
    data = Dataset(
        partners=[partner("A")],
        deals=[
            # won 200 on 07-11 after 10 days; new, paid, csat 4
            deal("a1", "A", "won", "2026-07-01", "2026-07-11", 200, type=DealType.NEW,
                 channel=Channel.PAID, csat=4),
            # won 400 on 08-01 after 61 days (06-01 -> 08-01: 30 + 31); upsell, earned
            deal("a2", "A", "won", "2026-06-01", "2026-08-01", 400, type=DealType.UPSELL,
                 channel=Channel.EARNED),
            # lost on the period's last day: counts
            deal("a3", "A", "lost", "2026-05-01", "2026-09-30", 1000, channel=Channel.PAID),
            # won on `end` (10-01): not in the period, but open at its end
            deal("a4", "A", "won", "2026-09-01", "2026-10-01", 999),
            # open, created inside the period: pipeline
            deal("a5", "A", "open", "2026-08-15", amount=500),
            # open, created after the period: not in its pipeline
            deal("a6", "A", "open", "2026-10-05", amount=7),
            # won in the previous period (Q2) after 10 days
            deal("a7", "A", "won", "2026-06-20", "2026-06-30", 50),
            # direct won deal: never A's
            deal("d1", None, "won", "2026-07-01", "2026-07-02", 100000),
        ],
    )  # fmt: skip
    return Scenario(data, AppConfig(), (Q3,))


def test_spec_example_kpis() -> None:
    sc = spec_example()
    result = reference_partner(sc.data, sc.app, "A", Q3)
    assert result["partner"] == {"id": "A", "name": "Partner A"}
    assert result["period"] == {"name": "2026-Q3", "start": "2026-07-01", "end": "2026-10-01"}
    assert result["previous_period"] == {"start": "2026-04-01", "end": "2026-07-01"}
    kpis = result["kpis"]
    assert set(kpis) == set(KPI_KEYS)
    assert kpis["deal_count"] == 2  # a1, a2 (a4 closed on `end`)
    assert kpis["won_revenue"] == 600.0
    assert kpis["avg_deal_size"] == 300.0  # the spec's example: 200 and 400 give 300
    assert kpis["close_rate"] == pytest.approx(2 / 3)  # a1, a2 won; a3 lost on the last day
    assert kpis["sales_cycle_days"] == 35.5  # (10 + 61) / 2
    assert kpis["pipeline_count"] == 2  # a4 (closes on `end`) and a5; a6 is created after
    assert kpis["pipeline_value"] == 1499.0  # 999 + 500
    # 2 * 2/3 * 300 / 35.5 = 400 / 35.5
    assert kpis["sales_velocity"] == pytest.approx(400 / 35.5)
    assert kpis["upsell_rate"] == 0.5  # a2 of a1, a2
    assert kpis["net_new_revenue"] == 200.0  # a1
    assert kpis["customer_satisfaction"] == 4.0  # only a1 has a csat
    assert kpis["registered_deals"] == 0
    assert kpis["deal_success"] is None  # no registered closed deal
    assert kpis["partner_nps"] is None
    assert kpis["survey_responses"] == 0
    assert kpis["courses_completed"] == 0
    assert all(type(kpis[key]) is int for key in ("deal_count", "pipeline_count"))


def test_spec_example_channels() -> None:
    sc = spec_example()
    channels = reference_partner(sc.data, sc.app, "A", Q3)["channels"]
    assert list(channels) == list(CHANNELS)
    assert channels["paid"] == {"deal_count": 1, "won_revenue": 200.0, "close_rate": 0.5}  # a1/a3
    assert channels["earned"] == {"deal_count": 1, "won_revenue": 400.0, "close_rate": 1.0}  # a2
    # a4 is "other" but closes outside the period: nothing closed
    assert channels["owned"] == {"deal_count": 0, "won_revenue": 0.0, "close_rate": None}
    assert channels["other"] == {"deal_count": 0, "won_revenue": 0.0, "close_rate": None}


def test_spec_example_previous_period() -> None:
    sc = spec_example()
    previous = reference_partner(sc.data, sc.app, "A", Q3)["previous"]
    # 2026-Q2 = [04-01, 07-01): only a7 won (50, 10 days); nothing lost
    assert previous["deal_count"] == 1
    assert previous["won_revenue"] == 50.0
    assert previous["avg_deal_size"] == 50.0
    assert previous["close_rate"] == 1.0
    assert previous["sales_cycle_days"] == 10.0
    # open at 07-01: a2 (created 06-01, closes 08-01) and a3 (created 05-01, closes 09-30);
    # a1 is created on 07-01 itself, which is not before 07-01
    assert previous["pipeline_count"] == 2
    assert previous["pipeline_value"] == 1400.0
    assert previous["sales_velocity"] == 10.0  # 2 * 1.0 * 50 / 10


def test_a_lone_partner_scores_100_and_ranks_first() -> None:
    sc = spec_example()
    result = reference_partner(sc.data, sc.app, "A", Q3)
    # every component with a value has one value: percentile 100; no NPS, the weights of the
    # other five (0.9) renormalize to 1, so the score is 100
    assert result["quality_score"] == 100.0
    assert (result["rank"], result["ranked_partners"]) == (1, 1)


@scenario
def null_amounts_and_dirty_cycle() -> Scenario:
    """Partner B in January 2026 given as an explicit range."""
    data = Dataset(
        partners=[partner("B")],
        deals=[
            # won without an amount, closed 5 days before it was created: cycle 0
            deal("b1", "B", "won", "2026-01-10", "2026-01-05"),
            # won 300 on the period's first day, 10 days after creation
            deal("b2", "B", "won", "2025-12-22", "2026-01-01", 300),
            # lost without an amount on the period's last day
            deal("b3", "B", "lost", "2025-11-01", "2026-01-31"),
            # open without an amount: counted in the pipeline, not in its value
            deal("b4", "B", "open", "2025-12-01"),
            # open with a close date, which is ignored while open
            deal("b5", "B", "open", "2026-01-20", "2026-01-25", 700),
            # won on the first day after the period (`end`): not counted
            deal("b6", "B", "won", "2026-01-02", "2026-02-01", 5000),
        ],
    )
    return Scenario(data, AppConfig(), (parse_period("2026-01-01..2026-01-31", AS_OF),))


def test_null_amounts_are_counted_but_not_summed() -> None:
    sc = null_amounts_and_dirty_cycle()
    result = reference_partner(sc.data, sc.app, "B", sc.periods[0])
    assert result["period"] == {
        "name": "2026-01-01..2026-01-31",
        "start": "2026-01-01",
        "end": "2026-02-01",
    }
    # an explicit range of 31 days is compared with the 31 days before it
    assert result["previous_period"] == {"start": "2025-12-01", "end": "2026-01-01"}
    kpis = result["kpis"]
    assert kpis["deal_count"] == 2  # b1, b2 (b6 closes on `end`)
    assert kpis["won_revenue"] == 300.0  # b1 has no amount
    assert kpis["avg_deal_size"] == 300.0  # 300 / one won deal with an amount
    assert kpis["close_rate"] == pytest.approx(2 / 3)  # b3 lost, amount or not
    assert kpis["sales_cycle_days"] == 5.0  # (0 for b1, closed before created, + 10) / 2
    assert kpis["pipeline_count"] == 3  # b4, b5 (open, close date ignored), b6 (closes at end)
    assert kpis["pipeline_value"] == 5700.0  # 700 + 5000; b4 has no amount
    # 3 * 2/3 * 300 / 5 = 120
    assert kpis["sales_velocity"] == pytest.approx(120.0)
    assert kpis["customer_satisfaction"] is None  # no csat at all
    assert kpis["upsell_rate"] == 0.0  # won deals, none an upsell
    assert kpis["net_new_revenue"] == 0.0


@scenario
def empty_partner() -> Scenario:
    """Partner C has nothing at all; partner E has one deal and its stage history."""
    data = Dataset(
        partners=[partner("C"), partner("E")],
        deals=[deal("e1", "E", "won", "2026-07-01", "2026-07-05", 100)],
        stage_changes=[
            change("e1", "Qualify", "2026-07-01T09:00:00+00:00"),
            change("e1", "Closed Won", "2026-07-05T09:00:00+00:00"),
        ],
    )
    return Scenario(data, AppConfig(), (Q3,))


def test_a_partner_without_deals_has_zeros_and_nulls() -> None:
    sc = empty_partner()
    result = reference_partner(sc.data, sc.app, "C", Q3)
    for kpis in (result["kpis"], result["previous"]):
        assert kpis == {
            "deal_count": 0,
            "won_revenue": 0.0,
            "avg_deal_size": None,
            "close_rate": None,
            "sales_cycle_days": None,
            "pipeline_count": 0,
            "pipeline_value": 0.0,
            "sales_velocity": None,
            "registered_deals": 0,
            "deal_success": None,
            "upsell_rate": None,
            "net_new_revenue": 0.0,
            "customer_satisfaction": None,
            "partner_nps": None,
            "survey_responses": 0,
            "courses_completed": 0,
            "customers_active": 0,
            "customers_gained": 0,
            "customers_lost": 0,
            "portfolio_growth": None,
            "account_retention": None,
            "mrr_retention": None,
            "mrr_active": 0.0,
            "onboarding_days": None,
            "tickets_per_customer": None,
            "referrals": 0,
        }
        assert type(kpis["won_revenue"]) is float and type(kpis["deal_count"]) is int
    assert all(c == {"deal_count": 0, "won_revenue": 0.0, "close_rate": None}
               for c in result["channels"].values())  # fmt: skip
    # the pipeline (first appearance: Qualify, then Closed Won) is listed even without entries;
    # E's deal entered both stages in the period, so C's share is 0 of 1, not null
    assert result["stages"] == [
        {"stage": "Qualify", "entered": 0, "share": 0.0, "avg_days": None},
        {"stage": "Closed Won", "entered": 0, "share": 0.0, "avg_days": None},
    ]
    # C still has a score: won_revenue 0 and courses 0 are values (E: 100, 0 for C, percentiles
    # of 2 values); C has no close rate, size or velocity. C: (0.3*0 + 0.1*50) / 0.4 = 12.5
    # (courses tie at 0: mean rank 1.5 → 50)
    assert result["quality_score"] == 12.5
    assert (result["rank"], result["ranked_partners"]) == (2, 2)


def test_stage_of_the_partner_with_the_deal() -> None:
    sc = empty_partner()
    stages = reference_partner(sc.data, sc.app, "E", Q3)["stages"]
    # Qualify from 07-01 09:00 to 07-05 09:00: 4 days; Closed Won has not ended
    assert stages == [
        {"stage": "Qualify", "entered": 1, "share": 1.0, "avg_days": 4.0},
        {"stage": "Closed Won", "entered": 1, "share": 1.0, "avg_days": None},
    ]


MARCH = parse_period("2026-03", AS_OF)  # [2026-03-01, 2026-04-01); previous 2026-02


@scenario
def nps() -> Scenario:
    """Survey answers in March 2026, dated in Los Angeles time."""
    data = Dataset(
        partners=[partner(pid) for pid in ("N1", "N2", "N3", "N4", "N5")],
        survey_responses=[
            # N1: 6, 7, 8, 9 → one detractor, two passives, one promoter
            answer("r1", "N1", 6, "2026-03-02T12:00:00+00:00"),
            answer("r2", "N1", 7, "2026-03-03T12:00:00+00:00"),
            answer("r3", "N1", 8, "2026-03-04T12:00:00+00:00"),
            answer("r4", "N1", 9, "2026-03-05T12:00:00+00:00"),
            # N2: 10, 10, 0 → two promoters, one detractor
            answer("r5", "N2", 10, "2026-03-10T12:00:00+00:00"),
            answer("r6", "N2", 10, "2026-03-11T12:00:00+00:00"),
            answer("r7", "N2", 0, "2026-03-12T12:00:00+00:00"),
            # N3: 9, 10 → all promoters
            answer("r8", "N3", 9, "2026-03-10T12:00:00+00:00"),
            answer("r9", "N3", 10, "2026-03-10T13:00:00+00:00"),
            # N4: 0, 6 → all detractors
            answer("r10", "N4", 0, "2026-03-10T12:00:00+00:00"),
            answer("r11", "N4", 6, "2026-03-10T13:00:00+00:00"),
            # N5: 04-01 05:00 UTC is 03-31 22:00 in Los Angeles: in March
            answer("r12", "N5", 9, "2026-04-01T05:00:00+00:00"),
            # N5: 03-01 07:00 UTC is 02-28 23:00 in Los Angeles: in February
            answer("r13", "N5", 0, "2026-03-01T07:00:00+00:00"),
            # a partner the store does not know: only the program counts it
            answer("r14", "GHOST", 3, "2026-03-15T12:00:00+00:00"),
        ],
    )
    app = AppConfig(timezone="America/Los_Angeles", kpi=KpiConfig(weights=KpiWeights(
        partner_nps=1.0)))  # fmt: skip
    return Scenario(data, app, (MARCH,))


@pytest.mark.parametrize(
    ("pid", "nps_value", "responses"),
    [
        ("N1", 0.0, 4),  # 100 * (1 - 1) / 4
        ("N2", pytest.approx(100 / 3), 3),  # 100 * (2 - 1) / 3 = 33.33…
        ("N3", 100.0, 2),  # 100 * (2 - 0) / 2
        ("N4", -100.0, 2),  # 100 * (0 - 2) / 2
        ("N5", 100.0, 1),  # only r12 is in March in Los Angeles
    ],
)
def test_partner_nps(pid: str, nps_value: Any, responses: int) -> None:
    sc = nps()
    kpis = reference_partner(sc.data, sc.app, pid, MARCH)["kpis"]
    assert kpis["partner_nps"] == nps_value
    assert kpis["survey_responses"] == responses


def test_nps_previous_period_and_program() -> None:
    sc = nps()
    # N5's r13 is on 02-28 in Los Angeles: February, the previous period: 100 * (0 - 1) / 1
    previous = reference_partner(sc.data, sc.app, "N5", MARCH)["previous"]
    assert (previous["partner_nps"], previous["survey_responses"]) == (-100.0, 1)
    # the program pools all 13 March answers, the unknown partner's too:
    # promoters 1 + 2 + 2 + 0 + 1 + 0 = 6, detractors 1 + 1 + 0 + 2 + 0 + 1 = 5
    kpis = reference_program(sc.data, sc.app, MARCH)["kpis"]
    assert kpis["survey_responses"] == 13
    assert kpis["partner_nps"] == pytest.approx(100 / 13)


def test_nps_only_weights_rank_by_nps() -> None:
    sc = nps()
    # NPS values: N4 -100, N1 0, N2 33.3, N3 100, N5 100 → ranks 1, 2, 3, 4.5, 4.5 of 5;
    # percentiles 100 * (r - 1) / 4: 0, 25, 50, 87.5, 87.5 and the only weight is partner_nps
    # rank = 1 + how many score strictly higher: N3, N5 1; N2 3; N1 4; N4 5
    expected = {"N4": (0.0, 5), "N1": (25.0, 4), "N2": (50.0, 3), "N3": (87.5, 1),
                "N5": (87.5, 1)}  # fmt: skip
    for pid, (score, rank) in expected.items():
        result = reference_partner(sc.data, sc.app, pid, MARCH)
        assert (result["quality_score"], result["rank"], result["ranked_partners"]) == (
            score,
            rank,
            5,
        )


@scenario
def percentile_ties() -> Scenario:
    """Only won revenue weighs; Q4 left before 2026-Q1 and does not take part."""
    data = Dataset(
        partners=[
            partner("Q1"),
            partner("Q2"),
            partner("Q3"),
            partner("Q4", left="2025-12-31"),  # left before the period started: inactive
            partner("Q5", joined="2026-04-01"),  # joins on `end`: inactive
        ],
        deals=[
            deal("q1", "Q1", "won", "2026-01-01", "2026-02-01", 100),
            deal("q2", "Q2", "won", "2026-01-01", "2026-02-01", 100),
            deal("q3", "Q3", "won", "2026-01-01", "2026-02-01", 300),
            deal("q4", "Q4", "won", "2026-01-01", "2026-02-01", 1000),
            deal("q5", "Q5", "won", "2026-01-01", "2026-02-01", 5000),
        ],
    )
    return Scenario(data, only_weights(won_revenue=1.0), (Q1,))


def test_percentile_ties_share_the_mean_rank() -> None:
    sc = percentile_ties()
    results = {pid: reference_partner(sc.data, sc.app, pid, Q1) for pid in
               ("Q1", "Q2", "Q3", "Q4", "Q5")}  # fmt: skip
    # among the active Q1, Q2, Q3: 100, 100, 300 → ranks 1.5, 1.5, 3 of n = 3;
    # percentiles 100 * 0.5 / 2 = 25, 25 and 100 * 2 / 2 = 100
    scores = {pid: r["quality_score"] for pid, r in results.items()}
    assert scores == {"Q1": 25.0, "Q2": 25.0, "Q3": 100.0, "Q4": None, "Q5": None}
    # rank = 1 + how many score strictly higher; tied partners share the better rank
    ranks = {pid: r["rank"] for pid, r in results.items()}
    assert ranks == {"Q1": 2, "Q2": 2, "Q3": 1, "Q4": None, "Q5": None}
    assert {r["ranked_partners"] for r in results.values()} == {3}
    # the inactive partners still have their KPIs
    assert results["Q4"]["kpis"]["won_revenue"] == 1000.0


@scenario
def renormalized_weights() -> Scenario:
    """Default weights; R2 has no survey answer, R3 no won deal; R4 left before 2026-Q1."""
    data = Dataset(
        partners=[partner("R1"), partner("R2"), partner("R3"), partner("R4", left="2025-12-15")],
        deals=[
            deal("r1w", "R1", "won", "2026-01-05", "2026-01-15", 100),  # 10 days
            deal("r1l", "R1", "lost", "2026-01-05", "2026-02-15", 900),
            deal("r1o", "R1", "open", "2026-03-01", amount=50),
            deal("r2w", "R2", "won", "2026-02-01", "2026-02-11", 300),  # 10 days
            deal("r3l", "R3", "lost", "2026-01-05", "2026-02-15", 900),
            deal("r4w", "R4", "won", "2026-01-05", "2026-02-15", 5000),
        ],
        trainings=[
            training("R1", "Basics", "2026-01-10"),
            training("R3", "Basics", "2026-01-10"),
            training("R3", "Advanced", "2026-03-31"),
            training("R3", "Expert", "2026-04-01"),  # on `end`: not counted
        ],
        survey_responses=[answer("s1", "R1", 10, "2026-02-01T10:00:00+00:00")],
    )
    return Scenario(data, AppConfig(), (Q1,))


def test_weights_renormalize_over_the_components_a_partner_has() -> None:
    sc = renormalized_weights()
    results = {pid: reference_partner(sc.data, sc.app, pid, Q1) for pid in
               ("R1", "R2", "R3", "R4")}  # fmt: skip
    # R1: won 100, close 0.5, size 100, velocity 1 * 0.5 * 100 / 10 = 5, NPS 100, courses 1
    # R2: won 300, close 1.0, size 300, velocity 0 * 1.0 * 300 / 10 = 0, NPS null, courses 0
    # R3: won 0,   close 0.0, size null, velocity null, NPS null, courses 2
    assert results["R1"]["kpis"]["sales_velocity"] == 5.0
    assert results["R2"]["kpis"]["sales_velocity"] == 0.0
    assert results["R3"]["kpis"]["sales_velocity"] is None
    assert results["R2"]["kpis"]["partner_nps"] is None
    # percentiles (R4 is inactive and left out):
    #   won_revenue: R3 0, R1 50, R2 100;  close_rate: R3 0, R1 50, R2 100
    #   avg_deal_size: R1 0, R2 100;  sales_velocity: R2 0, R1 100
    #   partner_nps: R1 alone → 100;  courses: R2 0, R1 50, R3 100
    # R1: 0.3*50 + 0.2*50 + 0.15*0 + 0.15*100 + 0.1*100 + 0.1*50 = 55, / 1.0
    # R2: (0.3*100 + 0.2*100 + 0.15*100 + 0.15*0 + 0.1*0) / 0.9 = 65 / 0.9 = 72.2…
    # R3: (0.3*0 + 0.2*0 + 0.1*100) / 0.6 = 16.6…
    assert results["R1"]["quality_score"] == pytest.approx(55.0)
    assert results["R2"]["quality_score"] == pytest.approx(650 / 9)
    assert results["R3"]["quality_score"] == pytest.approx(50 / 3)
    assert results["R4"]["quality_score"] is None
    assert [results[pid]["rank"] for pid in ("R1", "R2", "R3", "R4")] == [2, 1, 3, None]
    assert results["R1"]["ranked_partners"] == 3


def test_zero_weights_give_no_score() -> None:
    sc = renormalized_weights()
    # only NPS weighs: R1 has it (alone: 100); R2 and R3 have no NPS, so no score
    app = only_weights(partner_nps=1.0)
    results = {pid: reference_partner(sc.data, app, pid, Q1) for pid in ("R1", "R2", "R3")}
    assert [results[pid]["quality_score"] for pid in ("R1", "R2", "R3")] == [100.0, None, None]
    assert [results[pid]["rank"] for pid in ("R1", "R2", "R3")] == [1, None, None]
    assert results["R2"]["ranked_partners"] == 1


@scenario
def exact_score_ties() -> Scenario:
    """Four partners whose percentiles make K1 and K2 tie exactly, though not in naive floats."""
    data = Dataset(
        partners=[partner(pid) for pid in ("K0", "K1", "K2", "K3")],
        deals=[
            deal(f"k{i}", f"K{i}", "won", "2026-01-05", "2026-02-01", 100 * (i + 1))
            for i in range(4)
        ],
        survey_responses=[
            answer("k0a", "K0", 0, "2026-02-01T12:00:00+00:00"),  # NPS -100
            answer("k1a", "K1", 7, "2026-02-01T12:00:00+00:00"),  # NPS 0
            answer("k2a", "K2", 10, "2026-02-01T12:00:00+00:00"),  # NPS 100 * (1 - 0) / 2 = 50
            answer("k2b", "K2", 8, "2026-02-02T12:00:00+00:00"),
            answer("k3a", "K3", 10, "2026-02-01T12:00:00+00:00"),  # NPS 100
        ],
        trainings=[
            # courses: K0 0, K1 3, K2 1, K3 2
            *(training("K1", course, "2026-02-01") for course in ("a", "b", "c")),
            training("K2", "a", "2026-02-01"),
            *(training("K3", course, "2026-02-01") for course in ("a", "b")),
        ],
    )
    return Scenario(
        data, only_weights(won_revenue=0.1, partner_nps=0.1, courses_completed=0.1), (Q1,)
    )


def test_equal_scores_tie_exactly() -> None:
    sc = exact_score_ties()
    results = {pid: reference_partner(sc.data, sc.app, pid, Q1) for pid in
               ("K0", "K1", "K2", "K3")}  # fmt: skip
    # percentiles of 4 values: 0, 100/3, 200/3, 100 by ascending rank
    #   won revenue 100 < 200 < 300 < 400 and NPS -100 < 0 < 50 < 100: K0, K1, K2, K3
    #   courses 0 (K0) < 1 (K2) < 2 (K3) < 3 (K1)
    # K0: 0; K1: (100/3 + 100/3 + 100) / 3 = 500/9; K2: (200/3 + 200/3 + 100/3) / 3 = 500/9;
    # K3: (100 + 100 + 200/3) / 3 = 800/9. Summed in floats K1 gives 55.55555555555555 and
    # K2 55.555555555555564: the scores must be compared exactly to tie.
    scores = [results[pid]["quality_score"] for pid in ("K0", "K1", "K2", "K3")]
    assert scores == [0.0, pytest.approx(500 / 9), pytest.approx(500 / 9), pytest.approx(800 / 9)]
    assert results["K1"]["quality_score"] == results["K2"]["quality_score"]
    assert [results[pid]["rank"] for pid in ("K0", "K1", "K2", "K3")] == [4, 2, 2, 1]


LAST_90D = parse_period("last-90d", AS_OF)  # [08-25, 11-23); previous [05-27, 08-25)
LAST_QUARTER = parse_period("last-quarter", AS_OF)  # 2026-Q3; previous 2026-Q2


@scenario
def previous_periods() -> Scenario:
    data = Dataset(
        partners=[partner("P")],
        deals=[
            deal("p1", "P", "won", "2026-01-01", "2026-08-25", 1),  # last-90d's first day
            deal("p2", "P", "won", "2026-01-01", "2026-08-24", 10),  # previous' last day
            deal("p3", "P", "won", "2026-01-01", "2026-05-27", 100),  # previous' first day
            deal("p4", "P", "won", "2026-01-01", "2026-05-26", 1000),  # before both
            deal("p5", "P", "won", "2026-01-01", "2026-11-22", 10000),  # the as-of date
            deal("p6", "P", "won", "2026-01-01", "2026-06-30", 100000),  # end of Q2
            deal("p7", "P", "won", "2026-01-01", "2026-04-01", 1000000),  # start of Q2
        ],
    )
    return Scenario(data, AppConfig(), (LAST_90D, LAST_QUARTER))


def test_previous_period_of_last_90_days() -> None:
    sc = previous_periods()
    result = reference_partner(sc.data, sc.app, "P", LAST_90D)
    assert result["period"] == {"name": "last-90d", "start": "2026-08-25", "end": "2026-11-23"}
    assert result["previous_period"] == {"start": "2026-05-27", "end": "2026-08-25"}
    assert result["kpis"]["won_revenue"] == 10001.0  # p1 + p5
    assert result["previous"]["won_revenue"] == 100110.0  # p2 + p3 + p6


def test_previous_period_of_a_calendar_quarter() -> None:
    sc = previous_periods()
    result = reference_partner(sc.data, sc.app, "P", LAST_QUARTER)
    assert result["period"] == {"name": "last-quarter", "start": "2026-07-01", "end": "2026-10-01"}
    assert result["previous_period"] == {"start": "2026-04-01", "end": "2026-07-01"}
    assert result["kpis"]["won_revenue"] == 11.0  # p1 (08-25) + p2 (08-24)
    # 2026-Q2 holds p3 (05-27), p4 (05-26), p6 (06-30) and p7 (04-01)
    assert result["previous"]["won_revenue"] == 1101100.0
    assert result["previous"]["deal_count"] == 4


@scenario
def stages() -> Scenario:
    """The pipeline Prospect, Qualify, Propose in March 2026 (UTC); Recycle is outside it."""
    data = Dataset(
        partners=[partner("S1"), partner("S2")],
        deals=[
            deal("s1a", "S1", "open", "2026-02-20"),
            deal("s1b", "S1", "open", "2026-03-20"),
            deal("s2a", "S2", "open", "2026-03-01"),
            deal("dd", None, "open", "2026-03-15"),  # a direct deal
            deal("gp", "GHOST", "open", "2026-03-12"),  # a deal of an unknown partner
        ],
        stage_changes=[
            # a Prospect stay from 02-20 00:00 to 03-02 12:00 = 10.5 days, ending in March
            change("s1a", "Prospect", "2026-02-20T00:00:00+00:00"),
            # Qualify from 03-02 12:00 to 03-05 12:00 (Recycle begins) = 3 days
            change("s1a", "Qualify", "2026-03-02T12:00:00+00:00"),
            # outside the pipeline: ends the Qualify stay, is never reported
            change("s1a", "Recycle", "2026-03-05T12:00:00+00:00"),
            # Qualify again from 03-10; the stay ends on 04-03, after the period
            change("s1a", "Qualify", "2026-03-10T00:00:00+00:00"),
            change("s1a", "Propose", "2026-04-03T00:00:00+00:00"),
            # enters Prospect in March; the stay has not ended
            change("s1b", "Prospect", "2026-03-20T06:00:00+00:00"),
            # Prospect from 03-01 to 03-03 = 2 days
            change("s2a", "Prospect", "2026-03-01T00:00:00+00:00"),
            change("s2a", "Qualify", "2026-03-03T00:00:00+00:00"),
            change("dd", "Qualify", "2026-03-15T00:00:00+00:00"),
            change("gp", "Propose", "2026-03-12T00:00:00+00:00"),
            # a deal the store does not know: ignored everywhere
            change("ghost-deal", "Prospect", "2026-03-10T00:00:00+00:00"),
            change("ghost-deal", "Qualify", "2026-03-11T00:00:00+00:00"),
        ],
    )
    return Scenario(data, AppConfig(stages=["Prospect", "Qualify", "Propose"]), (MARCH,))


def test_stage_entries_shares_and_durations() -> None:
    sc = stages()
    s1 = reference_partner(sc.data, sc.app, "S1", MARCH)["stages"]
    # entries in March over all known deals: Prospect s1b, s2a = 2; Qualify s1a twice, s2a,
    # dd = 4; Propose gp = 1 (s1a's Propose is in April)
    assert s1 == [
        # s1b entered; the stay begun in February ended in March: 10.5 days, not an entry
        {"stage": "Prospect", "entered": 1, "share": 0.5, "avg_days": 10.5},
        # two entries of s1a; only the first stay (3 days) ended in March
        {"stage": "Qualify", "entered": 2, "share": 0.5, "avg_days": 3.0},
        {"stage": "Propose", "entered": 0, "share": 0.0, "avg_days": None},
    ]
    s2 = reference_partner(sc.data, sc.app, "S2", MARCH)["stages"]
    assert s2 == [
        {"stage": "Prospect", "entered": 1, "share": 0.5, "avg_days": 2.0},
        {"stage": "Qualify", "entered": 1, "share": 0.25, "avg_days": None},
        {"stage": "Propose", "entered": 0, "share": 0.0, "avg_days": None},
    ]


def test_program_stages_pool_every_deal_with_a_partner() -> None:
    sc = stages()
    program = reference_program(sc.data, sc.app, MARCH)["stages"]
    # partner deals s1a, s1b, s2a, gp; the direct dd only counts in the denominators
    assert program == [
        {"stage": "Prospect", "entered": 2, "share": 1.0, "avg_days": 6.25},  # (10.5 + 2) / 2
        {"stage": "Qualify", "entered": 3, "share": 0.75, "avg_days": 3.0},
        {"stage": "Propose", "entered": 1, "share": 1.0, "avg_days": None},
    ]


@scenario
def stage_edges() -> Scenario:
    """Entries and ends of stays exactly on March's first and end midnights (UTC)."""
    data = Dataset(
        partners=[partner("B")],
        deals=[deal("b1", "B", "open", "2026-02-01"), deal("b2", "B", "open", "2026-02-01")],
        stage_changes=[
            change("b1", "Prospect", "2026-02-27T00:00:00+00:00"),
            # at March's first midnight: a March entry, and the end of a 2-day March stay
            change("b1", "Qualify", "2026-03-01T00:00:00+00:00"),
            # at the end midnight: neither a March entry nor the end of a March stay
            change("b1", "Propose", "2026-04-01T00:00:00+00:00"),
            change("b2", "Prospect", "2026-03-31T23:59:59+00:00"),  # March's last second
        ],
    )
    return Scenario(data, AppConfig(stages=["Prospect", "Qualify", "Propose"]), (MARCH,))


def test_stage_entries_and_stays_at_the_period_edges() -> None:
    sc = stage_edges()
    assert reference_partner(sc.data, sc.app, "B", MARCH)["stages"] == [
        {"stage": "Prospect", "entered": 1, "share": 1.0, "avg_days": 2.0},
        {"stage": "Qualify", "entered": 1, "share": 1.0, "avg_days": None},
        {"stage": "Propose", "entered": 0, "share": None, "avg_days": None},
    ]


FEBRUARY = parse_period("2026-02", AS_OF)  # [2026-02-01, 2026-03-01)


@scenario
def stage_order_from_history() -> Scenario:
    """No stages in app.yaml: first appearance decides; dates are taken in Tokyo (UTC+9)."""
    data = Dataset(
        partners=[partner("T")],
        deals=[deal("t1", "T", "open", "2026-01-01"), deal("t2", "T", "open", "2026-01-01")],
        stage_changes=[
            change("t1", "Negotiate", "2026-01-01T00:00:00+00:00"),
            change("t2", "Discover", "2026-01-05T00:00:00+00:00"),
            # 01-31 16:00 UTC is 02-01 01:00 in Tokyo: a February entry; ends the Discover stay
            # of t2 after 26 days 16 hours = 26.66… days
            change("t2", "Negotiate", "2026-01-31T16:00:00+00:00"),
            # t1's Negotiate stay ends on 02-28 14:00 UTC = 02-28 23:00 Tokyo: in February;
            # 01-01 00:00 → 02-28 14:00 = 58 days 14 hours
            change("t1", "Closed", "2026-02-28T14:00:00+00:00"),
            # 02-28 16:00 UTC is 03-01 in Tokyo: not in February; ends t2's Negotiate stay
            change("t2", "Closed", "2026-02-28T16:00:00+00:00"),
            # an unknown deal's change is ignored, even for the order of the pipeline
            change("nobody", "Alpha", "2025-01-01T00:00:00+00:00"),
        ],
    )
    return Scenario(data, AppConfig(timezone="Asia/Tokyo"), (FEBRUARY,))


def test_stage_order_from_history_and_dates_in_the_timezone() -> None:
    sc = stage_order_from_history()
    stages_ = reference_partner(sc.data, sc.app, "T", FEBRUARY)["stages"]
    assert stages_ == [
        {"stage": "Negotiate", "entered": 1, "share": 1.0,
         "avg_days": pytest.approx(58 + 14 / 24)},
        {"stage": "Discover", "entered": 0, "share": None,
         "avg_days": pytest.approx(26 + 16 / 24)},
        {"stage": "Closed", "entered": 1, "share": 1.0, "avg_days": None},
    ]  # fmt: skip


@scenario
def velocity_rules() -> Scenario:
    data = Dataset(
        partners=[partner(pid) for pid in ("V1", "V2", "V3", "V4", "V5")],
        deals=[
            # V1: won 1000 (20 days) and 3000 (40 days), lost two, three open deals
            deal("v1a", "V1", "won", "2026-04-01", "2026-04-21", 1000),
            deal("v1b", "V1", "won", "2026-04-01", "2026-05-11", 3000),
            deal("v1c", "V1", "lost", "2026-04-01", "2026-05-11", 3000),
            deal("v1d", "V1", "lost", "2026-04-01", "2026-05-11"),
            deal("v1e", "V1", "open", "2026-04-01", amount=10),
            deal("v1f", "V1", "open", "2026-04-01", amount=20),
            deal("v1g", "V1", "open", "2026-06-30"),
            # V2: won 600 after 12 days, empty pipeline
            deal("v2a", "V2", "won", "2026-04-01", "2026-04-13", 600),
            # V3: won the day it was created (cycle 0), one open deal
            deal("v3a", "V3", "won", "2026-05-05", "2026-05-05", 600),
            deal("v3b", "V3", "open", "2026-05-05", amount=600),
            # V4: won without an amount, one open deal
            deal("v4a", "V4", "won", "2026-04-01", "2026-04-13"),
            deal("v4b", "V4", "open", "2026-04-01", amount=600),
            # V5: nothing closed, two open deals
            deal("v5a", "V5", "open", "2026-04-01", amount=1),
            deal("v5b", "V5", "open", "2026-04-01", amount=2),
        ],
    )
    return Scenario(data, AppConfig(), (Q2,))


@pytest.mark.parametrize(
    ("pid", "velocity"),
    [
        # pipeline 3 * close rate 2/4 * size (1000 + 3000) / 2 / cycle (20 + 40) / 2 days
        # = 3 * 0.5 * 2000 / 30 = 100 per day
        ("V1", 100.0),
        ("V2", 0.0),  # empty pipeline, every other factor exists: 0
        ("V3", None),  # a cycle of 0 days
        ("V4", None),  # no won deal with an amount: no average deal size
        ("V5", None),  # nothing closed: no close rate
    ],
)
def test_sales_velocity(pid: str, velocity: float | None) -> None:
    sc = velocity_rules()
    kpis = reference_partner(sc.data, sc.app, pid, Q2)["kpis"]
    assert kpis["sales_velocity"] == velocity
    if pid == "V1":
        assert (kpis["pipeline_count"], kpis["close_rate"], kpis["avg_deal_size"]) == (3, 0.5, 2000)
        assert kpis["sales_cycle_days"] == 30.0
    if pid == "V4":
        assert (kpis["deal_count"], kpis["won_revenue"], kpis["avg_deal_size"]) == (1, 0.0, None)


@scenario
def registrations_and_mix() -> Scenario:
    """Partner G in 2026-Q2: registrations, deal success, upsells, new revenue, csat, courses."""
    data = Dataset(
        partners=[partner("G")],
        deals=[
            # registered with no registration date: created_on (04-10) counts; won upsell
            deal("g1", "G", "won", "2026-04-10", "2026-05-01", 100, registered=True,
                 type=DealType.UPSELL, csat=5, channel=Channel.OWNED),
            # registered before the period: not a registration of Q2; lost in Q2
            deal("g2", "G", "lost", "2026-04-02", "2026-05-10", 100, registered=True,
                 registered_on=date(2026, 3, 15), type=DealType.NEW, csat=1),
            # registered on the period's last day, still open
            deal("g3", "G", "open", "2026-04-02", registered=True,
                 registered_on=date(2026, 6, 30)),
            # a registration date without `registered`: not a registration; won new
            deal("g4", "G", "won", "2026-04-02", "2026-06-01", 200, registered=False,
                 registered_on=date(2026, 4, 20), type=DealType.NEW, csat=2),
            # registered on `end`: not counted
            deal("g5", "G", "open", "2026-04-02", registered=True,
                 registered_on=date(2026, 7, 1)),
            # registered in Q2 but won in Q3: a registration, not part of deal success
            deal("g6", "G", "won", "2026-04-02", "2026-07-02", 100, registered=True,
                 registered_on=date(2026, 4, 3)),
        ],
        trainings=[
            training("G", "One", "2026-04-01"),
            training("G", "Two", "2026-06-30"),
            training("G", "Three", "2026-07-01"),
            training("G", "Four", "2026-03-31"),
            training("someone", "One", "2026-04-01"),  # an unknown partner's: program only
        ],
    )  # fmt: skip
    return Scenario(data, AppConfig(), (Q2,))


def test_registrations_success_upsells_and_courses() -> None:
    sc = registrations_and_mix()
    kpis = reference_partner(sc.data, sc.app, "G", Q2)["kpis"]
    assert kpis["registered_deals"] == 3  # g1 (created 04-10), g3 (06-30), g6 (04-03)
    assert kpis["deal_success"] == 0.5  # registered and closed in Q2: g1 won, g2 lost
    assert kpis["deal_count"] == 2  # g1, g4
    assert kpis["upsell_rate"] == 0.5  # g1 of g1, g4
    assert kpis["net_new_revenue"] == 200.0  # g4 (g2 is new but lost)
    assert kpis["customer_satisfaction"] == 3.5  # (5 + 2) / 2; g2's csat is on a lost deal
    assert kpis["courses_completed"] == 2  # 04-01 and 06-30
    assert reference_program(sc.data, sc.app, Q2)["kpis"]["courses_completed"] == 3


PROGRAM_PERIOD = Q2  # [2026-04-01, 2026-07-01); previous 2026-Q1


@scenario
def program() -> Scenario:
    data = Dataset(
        partners=[
            partner("A"),  # active throughout
            partner("B", joined="2026-05-10"),  # joins in the period
            partner("C", left="2026-06-01"),  # leaves in the period
            partner("D", left="2026-07-01"),  # leaves on `end`: still active at the end
            partner("E", joined="2026-07-01"),  # joins on `end`: not yet active
            partner("F", joined="2026-04-01"),  # joins on the period's first day
        ],
        deals=[
            deal("a", "A", "won", "2026-04-01", "2026-04-10", 100),
            deal("b", "B", "won", "2026-04-01", "2026-05-20", 200),
            deal("c", "C", "won", "2026-04-01", "2026-05-01"),  # no amount
            deal("x", "X", "won", "2026-04-01", "2026-05-01", 400),  # an unknown partner
            deal("direct-won", None, "won", "2026-04-01", "2026-05-01", 1000),
            deal("direct-lost", None, "lost", "2026-04-01", "2026-05-01", 1000),
            deal("a-lost", "A", "lost", "2026-04-01", "2026-06-01", 50),
        ],
    )
    return Scenario(data, AppConfig(), (PROGRAM_PERIOD,))


def test_program_kpis() -> None:
    sc = program()
    result = reference_program(sc.data, sc.app, PROGRAM_PERIOD)
    assert result["partner"] is None
    assert (result["quality_score"], result["rank"]) == (None, None)
    # active in Q2 (joined before 07-01, not left before 04-01): A, B, C, D, F; all have a
    # won revenue, so all have a score
    assert result["ranked_partners"] == 5
    kpis = result["kpis"]
    assert set(kpis) == set(KPI_KEYS) | set(PROGRAM_KEYS)
    # active at 07-01: A, B, D (leaves on 07-01), F; not C (left), not E (joins on 07-01)
    assert kpis["active_partners"] == 4
    # active at 04-01: A, C, D; not F (joins on 04-01 itself), not B or E
    assert kpis["partner_count_change"] == 1  # 4 - 3
    assert kpis["partners_joined"] == 2  # B, F (E joins on `end`)
    assert kpis["partners_left"] == 1  # C (D leaves on `end`)
    # pooled over every deal with a partner id, the unknown X included: a, b, c, x
    assert kpis["deal_count"] == 4
    assert kpis["won_revenue"] == 700.0  # 100 + 200 + 400
    assert kpis["close_rate"] == 0.8  # 4 won / (4 + a-lost); direct deals are not pooled
    assert kpis["partner_revenue"] == 700.0
    # Σ partners' won revenue (A 100, B 200, C 0) + the unknown partner's 400 = 700
    # share: 700 / all won revenue 1700 (the direct 1000 included)
    assert kpis["partner_revenue_share"] == pytest.approx(700 / 1700)
    previous = result["previous"]
    # 2026-Q1: active at 04-01: A, C, D = 3; at 01-01: A, C, D = 3; nobody joined or left
    assert (previous["active_partners"], previous["partner_count_change"]) == (3, 0)
    assert (previous["partners_joined"], previous["partners_left"]) == (0, 0)
    assert previous["partner_revenue"] == 0.0
    assert previous["partner_revenue_share"] is None  # nothing won at all: 0 / 0
    assert result["channels"]["other"] == {"deal_count": 4, "won_revenue": 700.0,
                                           "close_rate": 0.8}  # fmt: skip


def test_partner_kpis_next_to_the_program() -> None:
    sc = program()
    e = reference_partner(sc.data, sc.app, "E", PROGRAM_PERIOD)
    assert (e["quality_score"], e["rank"], e["ranked_partners"]) == (None, None, 5)
    c = reference_partner(sc.data, sc.app, "C", PROGRAM_PERIOD)
    # C's only won deal has no amount: counted, not summed
    assert (c["kpis"]["deal_count"], c["kpis"]["won_revenue"]) == (1, 0.0)
    assert c["kpis"]["avg_deal_size"] is None


def test_reference_raises_for_an_unknown_partner() -> None:
    sc = program()
    with pytest.raises(KeyError):
        reference_partner(sc.data, sc.app, "X", PROGRAM_PERIOD)

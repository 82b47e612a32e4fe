"""Goals through the store and the engine (kpi-spec.md section 9): `actual` over the period to
date, the open deals and close rate of a forecast, program goals, the three sources and their
precedence, section 9's order, and the goals a card carries. Numbers worked by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.digest import render_digest
from connectors.demo_data import DEMO_CURRENCY_RATES
from kpi.digest_data import build_digest
from kpi.engine import KpiEngine
from kpi.goal_progress import GoalSpec
from kpi.goals import PROGRAM, clear_goal, set_goal
from kpi.leaders import attainment_leaderboard
from kpi.models import Customer, Deal, DealStatus, Goal, Partner
from kpi.store import Store, open_store
from settings.app import AppConfig, parse_config
from settings.base import ConfigError
from settings.digests import DigestConfig
from settings.goals import Direction, GoalError, goal_period, parse_amount
from settings.periods import parse_period
from settings.vocab import PARTNER_KPI_KEYS, PROGRAM_ONLY_KPI_KEYS
from tests.demo_run import DEMO_AS_OF, DemoRun

D = date(2026, 11, 15)  # Q4 to date: [10-01, 11-16)


def _deal(id: str, partner: str | None, status: str, amount: str | None, **dates: date) -> Deal:
    return Deal(
        id=id,
        partner_id=partner,
        status=DealStatus(status),
        amount=None if amount is None else Decimal(amount),
        created_on=dates.pop("created_on", date(2026, 1, 1)),
        **dates,
    )


def _goal(partner: str | None, kpi: str, period: str, target: str, direction: str = "") -> Goal:
    span = goal_period(period)
    return Goal(
        partner_id=partner,
        kpi=kpi,
        period=period,
        start_on=span.start,
        end_on=span.end,
        target=Decimal(target),
        direction=Direction(direction or "at_least"),
    )


@pytest.fixture
def loaded(store: Store) -> Store:
    records = [
        Partner(id="P1", name="Beta", joined_on=date(2025, 1, 1)),
        Partner(id="P2", name="acme", joined_on=date(2025, 1, 1)),
        Partner(id="P3", name="Acme", joined_on=date(2025, 1, 1)),
        # P1's won deals in Q4: 100 on 10-05, 200 on D, 400 the day after D (not to date).
        _deal("w1", "P1", "won", "100", closed_on=date(2026, 10, 5)),
        _deal("w2", "P1", "won", "200", closed_on=date(2026, 11, 15)),
        _deal("w3", "P1", "won", "400", closed_on=date(2026, 11, 16)),
        _deal("l1", "P1", "lost", "70", closed_on=date(2026, 6, 1)),
        _deal("x1", None, "won", "50", closed_on=date(2026, 10, 10)),  # direct
        _deal("p2w", "P2", "won", "10", closed_on=date(2026, 10, 20)),
        # P1's open deals: only o1 (1000) and o2 (no amount) are in O as of D.
        _deal("o1", "P1", "open", "1000", created_on=date(2026, 11, 1),
              expected_close_on=date(2026, 12, 1)),
        _deal("o2", "P1", "open", None, created_on=date(2026, 11, 1),
              expected_close_on=date(2026, 12, 31)),
        _deal("o3", "P1", "open", "9", created_on=date(2026, 11, 20),
              expected_close_on=date(2026, 12, 1)),  # created after D
        _deal("o4", "P1", "open", "9", created_on=date(2026, 11, 1),
              expected_close_on=date(2026, 11, 15)),  # expected on or before D
        _deal("o5", "P1", "open", "9", created_on=date(2026, 11, 1),
              expected_close_on=date(2027, 1, 1)),  # after the period
        # P1's customers (section 7): C2 gained in Q4 to date, C3 after D, C4 lost in Q4, and
        # C5 (P2's) referred by P1's C1.
        Customer(id="C1", partner_id="P1", became_customer_on=date(2026, 1, 10),
                 mrr=Decimal(100)),
        Customer(id="C2", partner_id="P1", became_customer_on=date(2026, 10, 10),
                 onboarded_on=date(2026, 10, 20), mrr=Decimal(50)),
        Customer(id="C3", partner_id="P1", became_customer_on=date(2026, 11, 20)),
        Customer(id="C4", partner_id="P1", became_customer_on=date(2025, 5, 1),
                 churned_on=date(2026, 11, 1), mrr=Decimal(70)),
        Customer(id="C5", partner_id="P2", became_customer_on=date(2026, 10, 2),
                 referred_by="C1"),
    ]  # fmt: skip
    with store.transaction() as connection:
        store.upsert(connection, records, "files")
    return store


def _engine(store: Store, app_yaml: str = "") -> KpiEngine:
    app = parse_config(app_yaml, Path("app.yaml")).app if app_yaml else AppConfig()
    return KpiEngine(store, app.kpi_settings)


def _store_goals(store: Store, *goals: Goal) -> None:
    with store.transaction() as connection:
        store.upsert(connection, goals, "files")


def test_actual_is_the_kpi_to_date_with_forecast_and_coverage(loaded: Store) -> None:
    _store_goals(loaded, _goal("P1", "won_revenue", "2026-Q4", "1500"))
    [found], problems = _engine(loaded).goals("P1", D)
    assert problems == []
    assert found["partner"] == {"id": "P1", "name": "Beta"}
    assert found["period"] == {"name": "2026-Q4", "start": "2026-10-01", "end": "2027-01-01"}
    assert (found["target"], found["direction"]) == (1500.0, "at_least")
    assert found["elapsed"] == 0.5
    assert found["actual"] == 300.0  # 100 + 200; the 400 of 11-16 is after D
    assert found["attainment"] == 0.2
    assert found["expected"] == 750.0
    assert found["pace"] == 0.4
    assert found["projected"] == 600.0
    assert found["open_expected"] == 1000.0  # o1; o2 has no amount
    # close rate over [2025-11-16, 2026-11-16): won w1, w2, lost l1 = 2/3
    assert found["forecast"] == pytest.approx(300 + 1000 * 2 / 3, rel=1e-15)
    assert found["coverage"] == 1000 / 1200
    assert found["status"] == "at_risk"


def test_a_deal_goal_counts_open_deals_without_amounts(loaded: Store) -> None:
    _store_goals(loaded, _goal("P1", "deal_count", "2026-Q4", "4"))
    [found], _ = _engine(loaded).goals("P1", D)
    assert found["actual"] == 2
    assert found["open_expected"] == 2  # o1 and o2
    assert found["coverage"] == 1.0  # 2 / (4 - 2)
    assert found["status"] == "on_track"  # pace 2 / 2 = 1


def test_program_goals_use_the_programs_kpis(loaded: Store) -> None:
    _store_goals(
        loaded,
        _goal(None, "partner_revenue", "2026-Q4", "620"),
        _goal(None, "partners_joined", "2026", "1"),
    )
    found, _ = _engine(loaded).goals(PROGRAM, D)
    assert [g["kpi"] for g in found] == ["partners_joined", "partner_revenue"]  # by start
    assert found[0]["actual"] == 0 and found[0]["status"] == "at_risk"
    revenue = found[1]
    assert revenue["partner"] is None
    assert revenue["actual"] == 310.0  # P1 300 + P2 10; the direct 50 is not a partner's
    assert revenue["pace"] == 1.0 and revenue["status"] == "on_track"
    assert revenue["forecast"] is None
    program = _engine(loaded).program(parse_period("last-90d", D), as_of=D)
    assert [g["kpi"] for g in program["goals"]] == ["partners_joined", "partner_revenue"]


def test_order_and_the_goals_a_card_carries(loaded: Store) -> None:
    _store_goals(
        loaded,
        _goal("P1", "won_revenue", "2027-Q1", "5"),
        _goal("P1", "won_revenue", "2026-Q4", "5"),
        _goal("P1", "deal_count", "2026-Q4", "5"),
        _goal("P1", "deal_count", "2026-10-01..2026-11-30", "5"),
        _goal("P3", "deal_count", "2026", "5"),
        _goal("P2", "deal_count", "2026", "5"),
        _goal(None, "deal_count", "2027", "5"),
    )
    everything, _ = _engine(loaded).goals(None, D)
    order = [
        (g["partner"] and g["partner"]["id"], g["kpi"], g["period"]["name"]) for g in everything
    ]
    assert order == [
        (None, "deal_count", "2027"),
        ("P3", "deal_count", "2026"),  # "Acme" < "acme" once case is equal
        ("P2", "deal_count", "2026"),
        ("P1", "deal_count", "2026-10-01..2026-11-30"),  # same start and kpi: earlier end
        ("P1", "deal_count", "2026-Q4"),
        ("P1", "won_revenue", "2026-Q4"),
        ("P1", "won_revenue", "2027-Q1"),
    ]
    card = _engine(loaded).partner("P1", parse_period("last-90d", D), as_of=D)
    assert [(g["kpi"], g["period"]["name"]) for g in card["goals"]] == [
        ("deal_count", "2026-10-01..2026-11-30"),
        ("deal_count", "2026-Q4"),
        ("won_revenue", "2026-Q4"),
    ]  # 2027-Q1 does not contain D
    every = _engine(loaded).all_partners(parse_period("last-90d", D), as_of=D)
    assert every["P1"]["goals"] == card["goals"]
    assert [g["period"]["name"] for g in every["P2"]["goals"]] == ["2026"]


def test_app_yaml_then_slack_replace_the_files_goal_of_the_same_range(loaded: Store) -> None:
    _store_goals(loaded, _goal("P1", "won_revenue", "2026-Q4", "1000"))
    app_yaml = """
goals:
  - {partner: beta, kpi: WON_REVENUE, period: 2026-10-01..2026-12-31, target: 2000}
  - {partner: nobody, kpi: deal_count, period: 2026, target: 1}
  - {partner: acme, kpi: deal_count, period: 2026, target: 1}
  - {partner_id: P2, kpi: deal_count, period: 2026, target: 3}
"""
    engine = _engine(loaded, app_yaml)
    found, problems = engine.goals("P1", D)
    assert [(g["target"], g["period"]["name"]) for g in found] == [
        (2000.0, "2026-10-01..2026-12-31")
    ]
    assert problems == [
        "app.yaml: goals[1].partner: no partner has the id or name 'nobody'",
        "app.yaml: goals[2].partner: 2 partners are named 'acme'; give the partner's id",
    ]
    assert [g["target"] for g in engine.goals("P2", D)[0]] == [3.0]
    q4 = goal_period("2026-Q4")
    set_goal(loaded, GoalSpec("P1", "won_revenue", q4, Decimal("500000"), Direction.AT_LEAST,
                              "slack"), "U1")  # fmt: skip
    assert [g["target"] for g in engine.goals("P1", D)[0]] == [500000.0]
    assert clear_goal(loaded, "P1", "won_revenue", q4) is True
    assert clear_goal(loaded, "P1", "won_revenue", q4) is False
    assert [g["target"] for g in engine.goals("P1", D)[0]] == [2000.0]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{kpi: deal_count, period: last-90d, target: 1}", "period 'last-90d' moves"),
        ("{kpi: deal_count, period: this-quarter, target: 1}", "moves with the date"),
        ("{kpi: deal_count, period: 2026-13, target: 1}", "is not a period"),
        ("{kpi: won, period: 2026, target: 1}", "kpi 'won' is not a numeric KPI key"),
        ("{kpi: channels, period: 2026, target: 1}", "is not a numeric KPI key"),
        ("{partner: x, kpi: partners_left, period: 2026, target: 1}", "is a program KPI"),
        ("{kpi: deal_count, period: 2026, target: -1}", "target -1 is negative"),
        ("{kpi: deal_count, period: 2026, target: .nan}", "not a finite number"),
        ("{kpi: deal_count, period: 2026, target: 1, direction: up}", "direction 'up'"),
        ("{kpi: deal_count, period: 2026, target: 1, partner: a, partner_id: b}", "not both"),
    ],
)
def test_app_yaml_goal_faults_name_the_entry(entry: str, message: str) -> None:
    text = f"goals:\n  - {{kpi: deal_count, period: 2026, target: 1}}\n  - {entry}\n"
    with pytest.raises(ConfigError) as error:
        parse_config(text, Path("app.yaml"))
    assert str(error.value).startswith("app.yaml: goals[1]")
    assert message in str(error.value)


def test_app_yaml_directions_default_by_kpi_and_ignore_case() -> None:
    text = """goals:
  - {kpi: sales_cycle_days, period: 2026, target: 30}
  - {kpi: deal_count, period: 2026, target: 30}
  - {kpi: partners_left, period: 2026, target: 2, direction: AT_LEAST}
  - {kpi: close_rate, period: 2026, target: 0.45}
"""
    entries = parse_config(text, Path("app.yaml")).app.goals
    assert [e.fields.direction.value for e in entries] == [
        "at_most", "at_least", "at_least", "at_least",
    ]  # fmt: skip
    assert entries[3].fields.target == Decimal("0.45")


def test_the_demo_has_a_goal_in_every_status(demo_run: DemoRun, tmp_path: Path) -> None:
    """What `partner-kpi demo` loaded (the demo's goals.csv) shows every status of section 9."""
    copy = demo_run.copy_to(tmp_path / "demo")
    store = open_store(f"sqlite:///{copy / 'partner_kpi.db'}")
    app = AppConfig(currency_rates=DEMO_CURRENCY_RATES)
    found, _ = KpiEngine(store, app.kpi_settings).goals(None, date.fromisoformat(DEMO_AS_OF))
    statuses = {g["status"] for g in found}
    assert statuses == {
        "not_started", "no_data", "met", "missed", "on_track", "behind", "at_risk",
    }  # fmt: skip


def test_top_by_attainment_ranks_partners_on_their_goal(loaded: Store) -> None:
    _store_goals(
        loaded,
        _goal("P1", "won_revenue", "2026-Q4", "600"),  # 300 of 600: 50%
        _goal("P2", "won_revenue", "2026-Q4", "10"),  # 10 of 10: 100%
        _goal("P3", "won_revenue", "2026-Q4", "0"),  # attainment null: left out
        _goal("P2", "deal_count", "2026-Q4", "1"),
    )
    cards = _engine(loaded).all_partners(parse_period("last-90d", D), as_of=D)
    ranked = attainment_leaderboard(list(cards.values()), "won_revenue")
    assert [(card["partner"]["id"], goal["attainment"]) for card, goal in ranked] == [
        ("P2", 1.0),
        ("P1", 0.5),
    ]


def test_the_digest_lists_goals_behind_and_goals_met_since_the_last_one(loaded: Store) -> None:
    _store_goals(
        loaded,
        _goal("P1", "won_revenue", "2026-Q4", "700"),  # 300 as of 11-15, 700 as of 11-22
        _goal("P2", "deal_count", "2026-Q4", "10"),  # 1 of 10 at 53/92: at risk
        _goal(None, "partners_joined", "2026", "0"),  # met on both days: not news
    )
    weekly = DigestConfig.model_validate(
        {"name": "weekly", "channel": "C0DIGEST", "schedule": "0 9 * * mon"}
    )
    run_at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # counts as of 11-22; no run before
    data = build_digest(loaded, AppConfig(), weekly, run_at)
    assert [(g["partner"]["id"], g["status"]) for g in data.goals_behind] == [("P2", "at_risk")]
    assert [(g["partner"]["id"], g["kpi"]) for g in data.goals_met] == [("P1", "won_revenue")]
    text = json.dumps(render_digest(data, "USD").blocks, ensure_ascii=False)
    assert "*Goals behind or at risk* (1)" in text
    assert "• acme: 2026-Q4 deals won 1 of 10 (10%) · pace 17%, at risk" in text
    assert "*Goals met since the last digest* (1)" in text
    assert "• Beta: 2026-Q4 won revenue $700 of $700 (100%)" in text
    narrowed = DigestConfig.model_validate(
        {**weekly.model_dump(), "sections": ["program", "leaderboard"]}
    )
    assert build_digest(loaded, AppConfig(), narrowed, run_at).goals_behind == []


@pytest.mark.parametrize("period", ["2026-Q4", "last-365d", "2026-10-01..2026-11-15"])
def test_a_goals_actual_is_the_cards_kpi_over_the_same_range(loaded: Store, period: str) -> None:
    """`range_kpis` (what a goal's actual reads) carries every numeric goal key the card's
    `kpis` carry, with the same values: a key added to the card (such as section 7's) must be
    added there too, or its goals would read no data."""
    engine = _engine(loaded)
    span = parse_period(period, D)
    card = engine.partner("P1", span, as_of=D)["kpis"]
    ranged = engine.range_kpis(span, ["P1"])["P1"]
    goal_keys = set(PARTNER_KPI_KEYS) & set(card)
    assert goal_keys <= set(ranged)
    assert {k: ranged[k] for k in goal_keys} == {k: card[k] for k in goal_keys}


@pytest.mark.parametrize(
    ("typed", "kpi", "value"),
    [
        ("500k", "won_revenue", Decimal(500000)),
        ("1.2M", "won_revenue", Decimal(1200000)),
        ("$500,000", "won_revenue", Decimal(500000)),
        ("€1.5k", "pipeline_value", Decimal(1500)),
        ("45%", "close_rate", Decimal("0.45")),
        ("0.45", "close_rate", Decimal("0.45")),
        ("12", "deal_count", Decimal(12)),
        ("2B", "partner_revenue", Decimal(2000000000)),
    ],
)
def test_amounts_as_people_type_them(typed: str, kpi: str, value: Decimal) -> None:
    assert parse_amount(typed, kpi) == value


@pytest.mark.parametrize(
    ("typed", "kpi", "says"),
    [
        ("5x00", "won_revenue", "is not an amount"),
        ("1,00", "won_revenue", "is not an amount"),  # not groups of three
        ("45%", "won_revenue", "is a percentage"),
        ("$5", "deal_count", "is money"),
        ("", "deal_count", "is not an amount"),
        ("k", "deal_count", "is not an amount"),
    ],
)
def test_amounts_that_are_refused(typed: str, kpi: str, says: str) -> None:
    with pytest.raises(GoalError, match=says):
        parse_amount(typed, kpi)


@pytest.mark.parametrize("period", ["2026-Q4", "2026", "last-90d"])
def test_a_program_goals_actual_is_the_programs_kpi_over_the_same_range(
    loaded: Store, period: str
) -> None:
    engine = _engine(loaded)
    span = parse_period(period, D)
    card = engine.program(span, as_of=D)["kpis"]
    ranged = engine.program_kpis(span)
    goal_keys = (set(PARTNER_KPI_KEYS) | set(PROGRAM_ONLY_KPI_KEYS)) & set(card)
    assert goal_keys <= set(ranged)
    assert {k: ranged[k] for k in goal_keys} == {k: card[k] for k in goal_keys}


def test_customer_goals_read_section_7_to_date(loaded: Store) -> None:
    _store_goals(
        loaded,
        _goal("P1", "customers_gained", "2026-Q4", "2"),  # C2 by D; C3 comes after D
        _goal("P1", "customers_lost", "2026-Q4", "1", "at_most"),  # C4 on 11-01
        _goal("P1", "referrals", "2026-Q4", "4"),  # C5
        _goal("P1", "account_retention", "2026-Q4", "0.9"),  # C1 of {C1, C4} active at s
    )
    found = {g["kpi"]: g for g in _engine(loaded).goals("P1", D)[0]}
    gained = found["customers_gained"]
    assert (gained["actual"], gained["expected"], gained["pace"]) == (1, 1.0, 1.0)
    assert gained["status"] == "on_track"
    lost = found["customers_lost"]
    assert (lost["actual"], lost["expected"], lost["status"]) == (1, 0.5, "behind")
    assert (found["referrals"]["actual"], found["referrals"]["status"]) == (1, "at_risk")
    retention = found["account_retention"]
    assert (retention["actual"], retention["status"]) == (0.5, "behind")
    assert retention["pace"] is None
    _store_goals(loaded, _goal(None, "customers_gained", "2026-Q4", "4"))  # C5 and C2
    [program] = _engine(loaded).goals(PROGRAM, D)[0]
    assert (program["actual"], program["pace"], program["status"]) == (2, 1.0, "on_track")

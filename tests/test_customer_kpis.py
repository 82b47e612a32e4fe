"""Customer outcomes (kpi-spec.md section 7), worked by hand on a small program.

The period is 2026-Q2, [04-01, 07-01), compared with Q1, [01-01, 04-01). Partner P's customers
sit on every half-open edge; Q has one customer; GHOST is a partner id no partner has; c9 is a
direct customer. The engine (SQLite, and PostgreSQL when configured) must give the numbers below,
and so must the reference implementation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from kpi.engine import KpiEngine
from kpi.models import Customer, Partner, SupportTicket
from kpi.store import Store
from settings.app import AppConfig
from settings.periods import parse_period
from tests.kpi_reference import Dataset
from tests.test_kpi_engine import assert_engine_equals_reference, load

AS_OF = date(2026, 7, 15)
Q2 = parse_period("2026-Q2", AS_OF)


def customer(cid: str, partner: str | None, became: str, **fields: Any) -> Customer:
    values: dict[str, Any] = {"became_customer_on": date.fromisoformat(became), **fields}
    for name in ("churned_on", "onboarded_on"):
        if isinstance(values.get(name), str):
            values[name] = date.fromisoformat(values[name])
    return Customer(id=cid, partner_id=partner, **values)


def ticket(tid: str, customer_id: str, opened: str) -> SupportTicket:
    moment = datetime.fromisoformat(opened).replace(tzinfo=UTC)
    return SupportTicket(id=tid, customer_id=customer_id, opened_at=moment)


def program() -> Dataset:
    partners = [
        Partner(id="P", name="Portfolio", joined_on=date(2025, 1, 1)),
        Partner(id="Q", name="Quiet", joined_on=date(2025, 1, 1)),
    ]
    customers = [
        # active at s and e; onboarded in Q1 (10 days)
        customer("c1", "P", "2026-01-10", mrr=Decimal(100), onboarded_on="2026-01-20"),
        # became on s: not active at s, gained; onboarded on e: not in Q2's onboarding
        customer(
            "c2", "P", "2026-04-01", mrr=Decimal(50), onboarded_on="2026-07-01", referred_by="ghost"
        ),
        # churned on e: still active at e, not lost in Q2; no MRR
        customer("c3", "P", "2026-02-01", churned_on="2026-07-01"),
        # churned on s: active at s, lost in Q2
        customer("c4", "P", "2026-03-01", churned_on="2026-04-01", mrr=Decimal(200)),
        # an MRR in a currency without a rate (null); onboarded before it became a customer
        customer(
            "c5",
            "P",
            "2026-05-10",
            original_mrr=Decimal(400),
            currency="CHF",
            onboarded_on="2026-05-01",
            referred_by="c1",
        ),
        # onboarded 46 days after it became a customer
        customer("c6", "P", "2026-03-15", mrr=Decimal(300), onboarded_on="2026-04-30"),
        # became on e: not active at e, not gained, not in the period
        customer("c7", "P", "2026-07-01", referred_by="c1"),
        customer("c8", "Q", "2026-06-01", mrr=Decimal(80), referred_by="c6"),
        customer("c9", None, "2026-04-15", mrr=Decimal(5000), referred_by="c3"),  # direct
        customer("c10", "GHOST", "2026-01-05", churned_on="2026-05-01", mrr=Decimal(1000)),
    ]
    tickets = [
        ticket("t1", "c1", "2026-04-01T00:00:00"),  # at s: in
        ticket("t2", "c4", "2026-06-30T23:59:00"),  # just before e: in
        ticket("t3", "c1", "2026-07-01T00:00:00"),  # at e: out
        ticket("t4", "c2", "2026-03-31T23:59:59"),  # Q1, before c2 became a customer
        ticket("t5", "ghost", "2026-05-01T00:00:00"),  # an unknown customer: ignored
        ticket("t6", "c8", "2026-05-01T00:00:00"),  # Q's
        ticket("t7", "c9", "2026-05-01T00:00:00"),  # direct: not the program's
    ]
    return Dataset(partners=partners, customers=customers, tickets=tickets)


def same(kpis: dict[str, Any], expected: dict[str, Any]) -> bool:
    """`kpis` has the values of `expected` (section 7's keys; the others are section 3's)."""
    return {key: kpis[key] for key in expected} == expected


@pytest.fixture
def engine(store: Store) -> KpiEngine:
    load(store, program())
    return KpiEngine(store, AppConfig().kpi_settings)


def test_a_partners_customers_at_the_edges(engine: KpiEngine) -> None:
    card = engine.partner("P", Q2)
    assert same(
        card["kpis"],
        {
            "customers_active": 5,  # c1, c2, c3 (churned on e), c5, c6
            "customers_gained": 2,  # c2 (on s), c5
            "customers_lost": 1,  # c4 (churned on s)
            "portfolio_growth": 0.25,  # (5 - 4) / 4; active at s: c1, c3, c4, c6
            "account_retention": 0.75,  # c1, c3, c6 of 4
            "mrr_retention": pytest.approx(400 / 600),  # (100 + 300) / (100 + 200 + 300)
            "mrr_active": 450.0,  # 100 + 50 + 300; c3 and c5 have none
            "onboarding_days": 23.0,  # c5 0 (negative), c6 46
            "tickets_per_customer": pytest.approx(2 / 6),  # t1, t2 over c1-c6
            "referrals": 3,  # c5 (by c1), c8 (by c6), c9 (by c3)
        },
    )
    assert type(card["kpis"]["mrr_active"]) is float
    assert type(card["kpis"]["customers_active"]) is int


def test_the_previous_period(engine: KpiEngine) -> None:
    previous = engine.partner("P", Q2)["previous"]
    assert same(
        previous,
        {
            "customers_active": 4,
            "customers_gained": 4,  # c1, c3, c4, c6
            "customers_lost": 0,
            "portfolio_growth": None,  # nobody active on 01-01
            "account_retention": None,
            "mrr_retention": None,
            "mrr_active": 600.0,
            "onboarding_days": 10.0,  # c1
            "tickets_per_customer": 0.25,  # t4 (c2's, before it became one) over c1, c3, c4, c6
            "referrals": 0,
        },
    )


def test_zero_denominators_are_null(engine: KpiEngine) -> None:
    kpis = engine.partner("Q", Q2)["kpis"]
    assert same(
        kpis,
        {
            "customers_active": 1,
            "customers_gained": 1,
            "customers_lost": 0,
            "portfolio_growth": None,
            "account_retention": None,
            "mrr_retention": None,
            "mrr_active": 80.0,
            "onboarding_days": None,
            "tickets_per_customer": 1.0,
            "referrals": 0,
        },
    )


def test_the_program_pools_every_customer_with_a_partner(engine: KpiEngine) -> None:
    kpis = engine.program(Q2)["kpis"]
    assert same(
        kpis,
        {
            "customers_active": 6,  # P's 5 and c8
            "customers_gained": 3,  # c2, c5, c8
            "customers_lost": 2,  # c4 and GHOST's c10
            "portfolio_growth": 0.2,  # (6 - 5) / 5
            "account_retention": 0.6,  # 3 of 5
            "mrr_retention": 0.25,  # 400 / 1600
            "mrr_active": 530.0,
            "onboarding_days": 23.0,
            "tickets_per_customer": 0.375,  # t1, t2, t6 over 8 (c1-c6, c8, c10); c9 is direct
            "referrals": 3,
        },
    )


def test_every_partner_at_once_and_the_reference_agree(engine: KpiEngine) -> None:
    every = engine.all_partners(Q2)
    assert every["P"]["kpis"] == engine.partner("P", Q2)["kpis"]
    assert_engine_equals_reference(engine, program(), AppConfig(), Q2)


def test_tickets_count_by_their_date_in_the_deployment_timezone(store: Store) -> None:
    data = Dataset(
        partners=[Partner(id="P", name="P", joined_on=date(2025, 1, 1))],
        customers=[customer("c1", "P", "2026-01-01")],
        tickets=[
            ticket("late", "c1", "2026-07-01T03:00:00"),  # June 30, 23:00 in New York: in
            ticket("early", "c1", "2026-04-01T03:00:00"),  # March 31 in New York: out
        ],
    )
    load(store, data)
    app = AppConfig(timezone="America/New_York")
    kpis = KpiEngine(store, app.kpi_settings).partner("P", Q2)["kpis"]
    assert kpis["tickets_per_customer"] == 1.0

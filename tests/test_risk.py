"""Partners at risk over the store: the open deals past their expected close date come from one
index range (`KpiEngine.open_past_close`), and count what the data-trust counts count."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from kpi.engine import KpiEngine
from kpi.models import Deal, DealStatus, Partner
from kpi.risk import risks_in
from kpi.store import Store
from settings.app import AppConfig
from settings.periods import parse_period

TODAY = date(2026, 11, 22)  # last-90d: [2026-08-25, 2026-11-23)


def deal(
    number: int, partner: str | None, status: DealStatus, expected: date | None, **more: object
) -> Deal:
    return Deal(
        id=f"D{number}",
        partner_id=partner,
        name=f"Deal {number}",
        amount=Decimal(1000),
        status=status,
        created_on=date(2026, 9, 1),
        expected_close_on=expected,
        **more,  # type: ignore[arg-type]
    )


def test_open_deals_past_their_date_match_the_trust_counts_and_flag_a_partner(
    store: Store,
) -> None:
    partners = [
        Partner(id="P1", name="Acme", joined_on=date(2024, 1, 1)),
        Partner(id="P2", name="Globex", joined_on=date(2024, 1, 1)),
    ]
    open_ = DealStatus.OPEN
    deals = [
        # Acme: 3 open, 2 of them expected before Nov 23 (2 of 3 > half: at risk), and a win
        deal(1, "P1", open_, date(2026, 10, 1)),
        deal(2, "P1", open_, date(2026, 11, 22)),
        deal(3, "P1", open_, date(2026, 11, 23)),  # on the period's end: not past it
        deal(4, "P1", DealStatus.WON, date(2026, 10, 1), closed_on=date(2026, 10, 5)),
        # Globex: 2 open, 1 past (1 of 2 is not more than half), 1 with no date, and a win
        deal(5, "P2", open_, date(2026, 9, 30)),
        deal(6, "P2", open_, None),
        deal(7, "P2", DealStatus.WON, None, closed_on=date(2026, 10, 5)),
        deal(8, None, open_, date(2026, 9, 1)),  # direct: no partner's
    ]
    with store.transaction() as connection:
        store.upsert(connection, [*partners, *deals], "test")
    engine = KpiEngine(store, AppConfig().kpi_settings)
    period = parse_period("last-90d", TODAY)
    assert engine.open_past_close(period) == {"P1": 2, "P2": 1, None: 1}
    trust = {
        key: counts.open_past_close_date for key, counts in engine.trust_counts(period).items()
    }
    assert engine.open_past_close(period) == {k: v for k, v in trust.items() if v}
    risks = risks_in(engine, period, list(engine.all_partners(period).values()))
    assert [(r.card["partner"]["name"], r.reasons) for r in risks] == [
        ("Acme", ("2 of 3 open deals past their close date",))
    ]

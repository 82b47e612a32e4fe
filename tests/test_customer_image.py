"""The customers' in-memory copy (kpi.customer_image) gives what the SQL of kpi.customers gives,
over random programs in several time zones and on the windows' edges, on SQLite and
PostgreSQL; and every write to the customers or their tickets moves the version it is tied to
(migration 0013, also upgraded to from 0012 over a store with data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, inspect, update

from kpi import customer_image, images, schema
from kpi import engine as kpi_engine
from kpi.aggregates import PartnerKey, Totals
from kpi.customers import add_customers_of
from kpi.engine import KpiEngine
from kpi.migrate import downgrade, upgrade
from kpi.models import Customer, Partner, SupportTicket
from kpi.store import Store
from settings.app import AppConfig
from settings.periods import Period
from tests.budget import examples
from tests.kpi_compare import assert_same
from tests.kpi_reference import Dataset
from tests.test_images import windows_around
from tests.test_kpi_engine import fresh_store, load, programs

DAY = timedelta(days=1)


def _sums(
    connection: Connection,
    tz: ZoneInfo,
    windows: Sequence[Period],
    partner_ids: Sequence[str] | None,
    image: customer_image.CustomerImage | None,
) -> list[dict[str, Any]]:
    """Each window's customer sums per partner key, as plain values (MRR sums as floats: SQL's
    sum over none is 0, an integer, in both paths)."""
    found: list[dict[PartnerKey, Totals]] = [{} for _ in windows]
    add_customers_of(connection, tz, list(zip(found, windows, strict=True)), partner_ids, image)
    return [{str(key): asdict(t.customers) for key, t in totals.items()} for totals in found]


@settings(max_examples=examples(20), deadline=None, suppress_health_check=list(HealthCheck))
@given(program=programs(), shifts=st.lists(st.integers(-90, 90), min_size=2, max_size=2))
def test_the_copy_equals_the_sql(
    database_url: str,
    program: tuple[Dataset, AppConfig, Period],
    shifts: list[int],
    monkeypatch: Any,
) -> None:
    """Every partner's customer sums (and some partners') from the copy equal the SQL's for the
    period, the previous one and a window around them, one at a time and side by side: counts
    exactly, MRR sums to a relative 1e-9."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    data, app, period = program
    windows = windows_around(period, shifts)
    with fresh_store(database_url) as store:
        load(store, data)
        with store.engine.connect() as connection:
            copy = customer_image.current(connection, customer_image.version(connection))
            assert copy is not None
            some = [p.id for p in data.partners[:2]] + ["nobody"]
            for chosen in (None, some):
                for group in ([w] for w in windows):
                    where = f"{group[0].start}..{group[0].end} {chosen}"
                    wanted = _sums(connection, app.tz, group, chosen, None)
                    assert_same(_sums(connection, app.tz, group, chosen, copy), wanted, where)
                wanted = _sums(connection, app.tz, windows, chosen, None)
                assert_same(_sums(connection, app.tz, windows, chosen, copy), wanted, "together")


def _edges(tz: str) -> tuple[Dataset, Period]:
    """One partner's customers and tickets on a week's edges (the day or microsecond before
    its start, its start, the last day or microsecond in it, its end): 2**i of each kind on
    edge i, so every count tells which edges it took."""
    start, end = date(2026, 3, 2), date(2026, 3, 9)
    edges = [start - DAY, start, end - DAY, end]
    zone = ZoneInfo(tz)
    midnights = [datetime.combine(day, datetime.min.time(), zone) for day in (start, end)]
    step = timedelta(microseconds=1)
    moments = [midnights[0] - step, midnights[0], midnights[1] - step, midnights[1]]
    # R refers every B (gained on the edges); the X's churn and are onboarded on the edges
    customers = [Customer(id="R", partner_id="P0", became_customer_on=start - 60 * DAY)]
    for i, day in enumerate(edges):
        customers += [
            Customer(id=f"B{i}-{k}", partner_id="P0", became_customer_on=day, mrr=Decimal(1),
                     referred_by="R")
            for k in range(2**i)
        ]  # fmt: skip
        customers += [
            Customer(id=f"X{i}-{k}", partner_id="P0", became_customer_on=start - 30 * DAY,
                     churned_on=day, mrr=Decimal(16), onboarded_on=day)
            for k in range(2**i)
        ]  # fmt: skip
    tickets = [
        SupportTicket(id=f"T{i}-{k}", customer_id="R", opened_at=moment.astimezone(UTC))
        for i, moment in enumerate(moments)
        for k in range(2**i)
    ]
    data = Dataset(
        partners=[Partner(id="P0", name="P0", joined_on=date(2025, 1, 1))],
        customers=customers,
        tickets=tickets,
    )
    return data, Period("week", start, end)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_the_windows_edges_count_as_the_sql_counts_them(
    store: Store, tz: str, monkeypatch: Any
) -> None:
    """A customer gained, lost, onboarded or referred on a window's first day counts in it, on
    its end day not; a ticket opened at the zone's midnight that starts the window counts, a
    microsecond before its end counts, at the end not."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    data, period = _edges(tz)
    load(store, data)
    with store.engine.connect() as connection:
        copy = customer_image.current(connection, customer_image.version(connection))
        assert copy is not None
        wanted = _sums(connection, ZoneInfo(tz), [period], None, None)
        got = _sums(connection, ZoneInfo(tz), [period], None, copy)
    mine = wanted[0]["P0"]
    in_the_week = 2**1 + 2**2  # edges 1 and 2
    for name in ("gained", "lost", "onboarded", "tickets", "referrals"):
        assert mine[name] == in_the_week, name
    # active at the start: R, B0 and the X's churned on or after it
    assert (mine["active_at_start"], mine["mrr_at_start"]) == (1 + 1 + 14, 1 + 14 * 16)
    assert (mine["active_at_end"], mine["mrr_at_end"]) == (1 + 7 + 8, 7 + 8 * 16)
    assert mine["onboarding_days"] == 2 * 30 + 4 * 36
    assert mine["in_period"] == 1 + 7 + 14
    assert_same(got, wanted, tz)


def _version(store: Store) -> int:
    with store.engine.connect() as connection:
        return customer_image.version(connection)


def _executed(store: Store, statement: Any) -> None:
    with store.engine.begin() as connection:
        connection.execute(statement)


def test_every_write_to_the_customers_or_their_tickets_moves_the_version(store: Store) -> None:
    customer = Customer(id="C1", partner_id="P0", became_customer_on=date(2026, 1, 1))
    ticket = SupportTicket(id="T1", customer_id="C1", opened_at=datetime(2026, 1, 2, tzinfo=UTC))
    writes = [
        lambda: load(store, Dataset(customers=[customer])),
        lambda: load(store, Dataset(tickets=[ticket])),
        lambda: _executed(store, update(schema.customers).values(mrr=5.0)),
        lambda: _executed(
            store, update(schema.support_tickets).values(opened_at=datetime(2026, 2, 1))
        ),
        lambda: _executed(store, delete(schema.support_tickets)),
        lambda: _executed(store, delete(schema.customers)),
    ]
    seen = [_version(store)]
    for number, write in enumerate(writes):
        write()
        seen.append(_version(store))
        assert seen[-1] > seen[-2], f"write {number} left the version at {seen[-2]}"
    # the other tables' writes leave it
    load(store, Dataset(partners=[Partner(id="P0", name="P0", joined_on=date(2025, 1, 1))]))
    assert _version(store) == seen[-1]


def _ticket(tid: str) -> SupportTicket:
    """A ticket of `_edges`' customer R inside its week."""
    return SupportTicket(id=tid, customer_id="R", opened_at=datetime(2026, 3, 3, tzinfo=UTC))


def test_a_written_ticket_reaches_every_partners_cards(store: Store, monkeypatch: Any) -> None:
    """The engine's copy is loaded again once a write moved the version (never used stale)."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    data, period = _edges("UTC")
    load(store, data)
    engine = KpiEngine(store, AppConfig().kpi_settings)
    before = engine.all_partners(period)["P0"]["kpis"]["tickets_per_customer"]
    load(store, Dataset(tickets=[_ticket("T9")]))
    after = engine.all_partners(period)["P0"]["kpis"]["tickets_per_customer"]
    assert (before, after) == (6 / 22, 7 / 22)  # 22 customers active in the week


def test_a_store_with_customers_upgraded_from_0012_gets_the_version_and_its_triggers(
    database_url: str,
) -> None:
    data, _period = _edges("UTC")
    with fresh_store(database_url) as store:
        downgrade(store.engine, "0012")
        assert "kpi_customers_version" not in inspect(store.engine).get_table_names()
        load(store, data)  # written with no trigger to see it
        upgrade(store.engine)
        first = _version(store)
        assert first > 0
        load(store, Dataset(tickets=[_ticket("T9")]))
        assert _version(store) > first
        downgrade(store.engine, "0012")  # and back: the table and its triggers go
        assert "kpi_customers_version" not in inspect(store.engine).get_table_names()
        load(store, Dataset(tickets=[_ticket("T10")]))
        upgrade(store.engine)
        assert _version(store) > first  # a new start, after the versions of the first one


def test_many_partners_goals_read_their_customers_from_the_copy(
    store: Store, monkeypatch: Any
) -> None:
    """`range_kpis` (goals' actuals) for many partners cuts the copy, with the SQL's values."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    data, period = _edges("America/New_York")
    load(store, data)
    engine = KpiEngine(store, AppConfig(timezone="America/New_York").kpi_settings)
    keys = {"customers_active", "customers_gained", "tickets_per_customer", "mrr_retention"}
    cuts: list[int] = []
    add = customer_image.CustomerImage.add
    monkeypatch.setattr(customer_image.CustomerImage, "add", lambda *a: cuts.append(1) or add(*a))
    monkeypatch.setattr(kpi_engine, "_MANY_PARTNERS", 10**9)
    wanted = engine.range_kpis(period, ["P0", "nobody"], keys=keys)
    assert cuts == []
    monkeypatch.setattr(kpi_engine, "_MANY_PARTNERS", 2)
    assert engine.range_kpis(period, ["P0", "nobody"], keys=keys) == wanted
    assert cuts == [1]
    assert wanted["P0"]["customers_gained"] == 6

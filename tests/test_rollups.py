"""The KPI rollups stay equal to the data through every kind of write: inserts, updates that move
a deal to another partner or date, deletions, and writes that race a refresh. The engine reads
only the rollups for period sums, so comparing it with the reference after the writes is the
check; on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import delete, func, insert, select, update

from kpi import rollups, schema
from kpi.aggregates import Aggregator
from kpi.engine import KpiEngine
from kpi.migrate import downgrade, upgrade
from kpi.models import (
    Customer,
    Deal,
    DealStatus,
    Partner,
    StageChange,
    SupportTicket,
    TrainingCompletion,
)
from kpi.store import KINDS, Store
from settings.app import AppConfig
from settings.periods import Period, parse_period
from tests.budget import examples
from tests.kpi_reference import Dataset
from tests.test_kpi_engine import (
    assert_engine_equals_reference,
    fresh_store,
    load,
    programs,
)
from tests.test_kpi_reference import SCENARIOS

RECORD_MODELS = (Partner, Deal, StageChange, TrainingCompletion)


def become(store: Store, data: Dataset) -> None:
    """Turns the store's records into `data`'s, the way a files sync does: deletes what is not
    in it, upserts the rest (unchanged rows are not written, changed ones are updated)."""
    with store.transaction() as connection:
        for model, records in (
            (Partner, data.partners),
            (Deal, data.deals),
            (StageChange, data.stage_changes),
            (TrainingCompletion, data.trainings),
            (Customer, data.customers),
            (SupportTicket, data.tickets),
        ):
            kind = KINDS[model]
            keep = {kind.to_row(record, "test")["id"] for record in records}
            store.delete_missing(connection, model, "test", keep)
        connection.execute(delete(schema.survey_responses))  # never deleted by a sync
        store.upsert(connection, data.records(), "test")
        store.refresh_stays(connection)


#: Columns added after 0003, which this version's Store writes but a 0003 schema lacks.
LATER_COLUMNS = {"partners": {"region"}, "trainings": {"occurrence"}}


def load_at_0003(store: Store, data: Dataset) -> None:
    """Writes `data` into a store at revision 0003, as that version's Store did."""
    with store.transaction() as connection:
        for record in data.records():
            kind = KINDS[type(record)]
            row = kind.to_row(record, "test")
            for column in LATER_COLUMNS.get(kind.table.name, ()):
                del row[column]
            connection.execute(insert(kind.table), row)  # the INSERT names row's columns
        store.refresh_stays(connection)


def store_examples(count: int) -> settings:
    """Hypothesis settings for a test that fills a store per example: slow, and no deadline."""
    return settings(
        max_examples=examples(count),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@store_examples(15)
@given(before=programs(), after=programs())
def test_rollups_follow_every_write(
    database_url: str,
    before: tuple[Dataset, AppConfig, Period],
    after: tuple[Dataset, AppConfig, Period],
) -> None:
    first, first_app, first_period = before
    data, app, period = after
    with fresh_store(database_url) as store:
        load(store, first)
        # the rollups of `first`
        KpiEngine(store, first_app.kpi_settings).all_partners(first_period)
        become(store, data)
        assert_engine_equals_reference(KpiEngine(store, app.kpi_settings), data, app, period)
        assert_rollups_as_defined(store)  # the refreshed partners' rows and the hours


def deal(deal_id: str, partner_id: str | None, closed_on: date, amount: int = 1000) -> Deal:
    return Deal(
        id=deal_id,
        partner_id=partner_id,
        name=deal_id,
        amount=Decimal(amount),
        status=DealStatus.WON,
        created_on=date(2026, 1, 5),
        closed_on=closed_on,
    )


def marks(store: Store) -> tuple[set[str], int]:
    with store.engine.connect() as connection:
        partners = set(
            connection.execute(select(schema.kpi_dirty_partners.c.partner_key)).scalars()
        )
        hours = connection.execute(select(func.count()).select_from(schema.kpi_dirty_hours))
        return partners, hours.scalar_one()


def won_revenue(store: Store, partner_id: str | None) -> float:
    period = parse_period("2026-Q1", date(2026, 11, 22))
    rollups.refresh(store.engine)
    with store.engine.connect() as connection:
        totals = Aggregator(connection, AppConfig().tz).totals(period)
    found = totals.get(partner_id)
    return float(found.closed.won_revenue) if found else 0.0


def test_writes_mark_the_partners_and_hours_they_touch(store: Store) -> None:
    with store.transaction() as connection:
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1))], "test")
    assert marks(store)[0] >= {"P1"}
    rollups.refresh(store.engine)
    assert marks(store) == (set(), 0)

    with store.transaction() as connection:  # unchanged: not written, nothing marked
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1))], "test")
    assert marks(store) == (set(), 0)

    with store.transaction() as connection:  # moved to another partner: both are stale
        store.upsert(connection, [deal("D1", "P2", date(2026, 2, 1))], "test")
    assert marks(store)[0] == {"P1", "P2"}
    assert (won_revenue(store, "P1"), won_revenue(store, "P2")) == (0.0, 1000.0)

    with store.transaction() as connection:  # a direct deal and a stage change
        store.upsert(
            connection,
            [
                deal("D2", None, date(2026, 3, 1), 500),
                StageChange(deal_id="D2", stage="Won", entered_at=datetime(2026, 3, 1, 14, 30)),
            ],
            "test",
        )
    assert marks(store) == ({""}, 1)
    assert won_revenue(store, None) == 500.0

    with store.transaction() as connection:
        connection.execute(delete(schema.deals).where(schema.deals.c.id == "D2"))
    assert marks(store) == ({""}, 1)  # the deal's partner key, and its stage change's hour
    assert won_revenue(store, None) == 0.0


def test_a_write_that_races_a_refresh_stays_marked(store: Store) -> None:
    """The refresh deletes a mark only at the version it rebuilt; a write in between bumps it."""
    with store.transaction() as connection:
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1))], "test")
    rollups.refresh(store.engine)

    with store.transaction() as connection:
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1), 2000)], "test")
    seen = rollups.read_marks(store.engine)  # a refresh reads the marks ...
    with store.transaction() as connection:  # ... a sync writes again before it clears them
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1), 3000)], "test")
    rollups.rebuild(store.engine, seen)
    rollups.clear_marks(store.engine, seen)

    assert marks(store)[0] == {"P1"}
    assert won_revenue(store, "P1") == 3000.0


def test_a_store_with_data_upgraded_to_the_rollups_builds_them_at_the_first_question(
    database_url: str,
) -> None:
    built = SCENARIOS["spec_example"]()
    with fresh_store(database_url) as store:
        downgrade(store.engine, "0003")  # back to the schema before the rollups
        load_at_0003(store, built.data)  # written with no trigger to see it
        upgrade(store.engine)
        assert marks(store)[0] == {rollups.ALL}
        for period in built.periods:
            assert_engine_equals_reference(
                KpiEngine(store, built.app.kpi_settings), built.data, built.app, period
            )
        assert marks(store) == (set(), 0)


@store_examples(10)
@given(program=programs())
def test_stage_changes_written_before_the_rollups_get_their_partner_keys(
    database_url: str, program: tuple[Dataset, AppConfig, Period]
) -> None:
    """As after the upgrade to the rollups or a bulk load: the stage changes lack the partner
    key the triggers keep, and the full rebuild such a write asks for gives it to them."""
    data, app, period = program
    with fresh_store(database_url) as store:
        load(store, data)
        with store.transaction() as connection:  # a partner-key-only write fires no trigger
            connection.execute(update(schema.stage_changes).values(partner_key=None))
            everything = schema.kpi_dirty_partners.c.partner_key == rollups.ALL
            connection.execute(delete(schema.kpi_dirty_partners).where(everything))
            connection.execute(
                insert(schema.kpi_dirty_partners).values(partner_key=rollups.ALL, version=1)
            )
        assert_engine_equals_reference(KpiEngine(store, app.kpi_settings), data, app, period)
        assert_rollups_as_defined(store)  # every row of the full rebuild


def test_a_question_does_not_wait_for_a_refresh_that_holds_the_store(store: Store) -> None:
    """A sync's refresh (minutes on a first build) or a long write holds the store: a question
    answers from the rollups as they stand, and the marks stay for the refresh in progress."""
    with store.transaction() as connection:
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1))], "test")
    rollups.refresh(store.engine)
    with store.transaction() as connection:
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1), 2000)], "test")

    holder = store.engine.connect()
    try:
        holding = holder.begin()
        if store.engine.dialect.name == "postgresql":
            holder.exec_driver_sql(f"SELECT pg_advisory_xact_lock{rollups.PG_REFRESH_LOCK}")
        else:  # another writer in the middle of a transaction
            holder.execute(
                delete(schema.kpi_dirty_hours).where(schema.kpi_dirty_hours.c.version < 0)
            )
        started = time.monotonic()
        assert rollups.refresh(store.engine, wait=False) is None
        assert time.monotonic() - started < 5
        assert marks(store)[0] == {"P1"}  # still marked
        holding.rollback()
    finally:
        holder.close()
    assert won_revenue(store, "P1") == 2000.0  # the next refresh catches up


def test_a_refresh_in_another_schema_does_not_hold_this_one(store: Store) -> None:
    """Stores sharing a PostgreSQL database in separate schemas refresh independently."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with store.transaction() as connection:
        store.upsert(connection, [deal("D1", "P1", date(2026, 2, 1))], "test")
    with store.engine.connect() as holder, holder.begin():
        # what a refresh of a store in the public schema holds
        holder.exec_driver_sql("SET LOCAL search_path TO public")
        holder.exec_driver_sql(f"SELECT pg_advisory_xact_lock{rollups.PG_REFRESH_LOCK}")
        assert rollups.refresh(store.engine, wait=False) is not None
    assert won_revenue(store, "P1") == 1000.0


def every_mark(store: Store) -> tuple[set[str], set[datetime], set[tuple[str, str | None]]]:
    """The marked partners and hours, and each stage change's partner key."""
    with store.engine.connect() as connection:
        partners = set(
            connection.execute(select(schema.kpi_dirty_partners.c.partner_key)).scalars()
        )
        hours = set(connection.execute(select(schema.kpi_dirty_hours.c.hour)).scalars())
        changes = schema.stage_changes
        keys = {(row.id, row.partner_key) for row in connection.execute(select(changes))}
    return partners, hours, keys


@pytest.mark.parametrize("batched", [True, False])
def test_a_batch_marks_what_the_triggers_mark(store: Store, batched: bool) -> None:
    """`Store.upsert` writes deals, stage changes and trainings with the triggers dropped and
    marks them per batch on SQLite (kpi.rollup_marks); row by row, the triggers mark: both
    mark the same partners and hours and give stage changes the same partner keys."""
    if batched and store.engine.dialect.name != "sqlite":
        pytest.skip("batched marks are SQLite's")
    moment = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    steps: list[list[Any]] = [
        [StageChange(deal_id="d1", stage="Prospecting", entered_at=moment)],  # an orphan
        [deal("d1", "p1", date(2026, 3, 5)), deal("d2", None, date(2026, 3, 6))],
        [
            StageChange(deal_id="d1", stage="Won", entered_at=moment.replace(day=5, hour=14)),
            StageChange(deal_id="d2", stage="Won", entered_at=moment.replace(day=6)),
        ],
        [deal("d1", "p2", date(2026, 3, 5)), deal("d2", "p3", date(2026, 4, 1))],  # moved
        [TrainingCompletion(partner_id="p4", course="c", completed_on=date(2026, 3, 2))],
        [TrainingCompletion(partner_id="p4", course="c", completed_on=date(2026, 3, 3))],
    ]
    seen = []
    for records in steps:
        rollups.refresh(store.engine)  # every step starts unmarked
        with store.transaction() as connection:
            if batched:
                store.upsert(connection, records, "test")
            else:  # each row by itself, as another writer would: the triggers mark it
                for record in records:
                    row = KINDS[type(record)].to_row(record, "test")
                    store.insert_or_update(connection, KINDS[type(record)].table, [row])
        seen.append(every_mark(store))
    if store.engine.dialect.name == "sqlite" and not batched:
        with store.engine.connect() as connection:
            names = connection.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                " AND tbl_name IN ('deals', 'stage_changes', 'trainings')"
            ).scalar_one()
        assert names == 9  # the batches created again every trigger they dropped
    expected = [
        (set(), {datetime(2026, 3, 1, 9)}, {("d1|Prospecting|2026-03-01T09:30:00", None)}),
        ({"p1", ""}, {datetime(2026, 3, 1, 9)}, {("d1|Prospecting|2026-03-01T09:30:00", "p1")}),
    ]
    assert seen[:2] == expected
    assert seen[2][:2] == (set(), {datetime(2026, 3, 5, 14), datetime(2026, 3, 6, 9)})
    assert seen[3][:2] == ({"p1", "p2", "", "p3"}, set())
    assert {key for _, key in seen[3][2]} == {"p2", "p3"}
    assert seen[4][:2] == seen[5][:2] == ({"p4"}, set())


def defined_rollups(
    store: Store,
) -> tuple[dict[tuple[str, date], tuple[int, ...]], dict[tuple[str, datetime], int]]:
    """The rollup rows as the module docstring defines them, computed here from the stored
    records: per partner key and day, the running sums of each deal's close (on `closed_on`),
    creation (`created_on`), settlement (`closed_on`, else `created_on` when it has none or it
    is earlier), registration (`registered_on`, else `created_on`) and each training completion;
    per stage and UTC hour, the running count of entries by stage changes of stored deals."""
    deals, trainings, changes = schema.deals, schema.trainings, schema.stage_changes
    per_day: dict[tuple[str, date], dict[str, int]] = {}

    def count(key: str | None, day: date, **values: int) -> None:
        sums = per_day.setdefault((key or "", day), dict.fromkeys(rollups.MEASURES, 0))
        for name, value in values.items():
            sums[name] += value

    with store.engine.connect() as connection:
        deal_rows = connection.execute(select(deals)).all()
        training_rows = connection.execute(select(trainings)).all()
        known = set(connection.execute(select(deals.c.id)).scalars())
        change_rows = connection.execute(
            select(changes.c.deal_id, changes.c.stage, changes.c.entered_at)
        ).all()
    for row in deal_rows:
        amount = round((row.amount or 0.0) * rollups.MICROS)
        won = row.status == "won"
        if row.status in ("won", "lost") and row.closed_on is not None:
            cycle = (row.closed_on - row.created_on).days
            count(
                row.partner_id,
                row.closed_on,
                won=int(won),
                lost=int(row.status == "lost"),
                won_revenue=amount if won else 0,
                won_with_amount=int(won and row.amount is not None),
                cycle_days=cycle if won and cycle > 0 else 0,
                registered_closed=int(row.registered),
                registered_won=int(won and row.registered),
                upsell_won=int(won and row.type == "upsell"),
                new_revenue=amount if won and row.type == "new" else 0,
                csat_sum=row.csat if won and row.csat is not None else 0,
                csat_count=int(won and row.csat is not None),
            )
        count(row.partner_id, row.created_on, created=1, created_value=amount)
        if row.status in ("won", "lost"):
            late = row.closed_on is not None and row.closed_on >= row.created_on
            count(
                row.partner_id,
                row.closed_on if late else row.created_on,
                settled=1,
                settled_value=amount,
            )
        if row.registered:
            count(row.partner_id, row.registered_on or row.created_on, registered=1)
    for row in training_rows:
        count(row.partner_id, row.completed_on, courses=1)
    running: dict[tuple[str, date], tuple[int, ...]] = {}
    totals: dict[str, list[int]] = {}
    for key, day in sorted(per_day):
        total = totals.setdefault(key, [0] * len(rollups.MEASURES))
        for index, name in enumerate(rollups.MEASURES):
            total[index] += per_day[key, day][name]
        running[key, day] = tuple(total)

    per_hour: dict[tuple[str, datetime], int] = {}
    for deal_id, stage, entered_at in change_rows:
        if deal_id in known:
            hour = entered_at.replace(minute=0, second=0, microsecond=0)
            per_hour[stage, hour] = per_hour.get((stage, hour), 0) + 1
    entered: dict[tuple[str, datetime], int] = {}
    so_far: dict[str, int] = {}
    for stage, hour in sorted(per_hour):
        so_far[stage] = so_far.get(stage, 0) + per_hour[stage, hour]
        entered[stage, hour] = so_far[stage]
    return running, entered


def stored_rollups(
    store: Store,
) -> tuple[dict[tuple[str, date], tuple[int, ...]], dict[tuple[str, datetime], int], set[str]]:
    days, hours = schema.kpi_partner_days, schema.kpi_stage_hours
    with store.engine.connect() as connection:
        day_rows = {
            (row.partner_key, row.day): tuple(int(row[name]) for name in rollups.MEASURES)
            for row in connection.execute(select(days)).mappings()
        }
        hour_rows = {
            (row.stage, row.hour): row.entered for row in connection.execute(select(hours))
        }
        keys = set(connection.execute(select(schema.kpi_partner_keys.c.partner_key)).scalars())
    return day_rows, hour_rows, keys


def rebuild_everything(store: Store) -> None:
    """What a store's first refresh after a bulk load does: every partner, every hour."""
    with store.transaction() as connection:
        connection.execute(delete(schema.kpi_dirty_partners))
        connection.execute(delete(schema.kpi_dirty_hours))
        connection.execute(
            insert(schema.kpi_dirty_partners).values(partner_key=rollups.ALL, version=1)
        )
        connection.execute(
            insert(schema.kpi_dirty_hours).values(hour=datetime(2000, 1, 1), version=1)
        )
    report = rollups.refresh(store.engine)
    assert report is not None and report.full


def assert_rollups_as_defined(store: Store) -> None:
    day_rows, hour_rows, keys = stored_rollups(store)
    expected_days, expected_hours = defined_rollups(store)
    assert day_rows == expected_days
    assert hour_rows == expected_hours
    assert keys == {key for key, _ in expected_days}


def test_a_full_rebuild_gives_every_day_and_hour_as_defined(store: Store) -> None:
    """Deals whose events fall on the same day or on different ones, in every combination the
    rebuild treats apart: closed on the day of creation, before it, after it or (a row written
    around the models) without a close date; registered on the day of creation, without a
    date, before or after it; open; direct; and stage changes of known and unknown deals, one
    with a partner key gone stale (written around the triggers)."""

    def one(
        deal_id: str,
        partner: str | None,
        status: str,
        created: date,
        closed: date | None,
        **more: Any,
    ) -> Deal:
        return Deal(
            id=deal_id,
            partner_id=partner,
            name=deal_id,
            status=DealStatus(status),
            created_on=created,
            closed_on=closed,
            **more,
        )

    def change(deal_id: str, stage: str, *moment: int) -> StageChange:
        return StageChange(deal_id=deal_id, stage=stage, entered_at=datetime(*moment, tzinfo=UTC))

    jan = [date(2026, 1, day) for day in range(1, 32)]
    records: list[Any] = [
        one(
            "D1",
            "P1",
            "won",
            jan[4],
            jan[4],
            amount=Decimal("1000.5"),
            type="new",
            registered=True,
            csat=4,
        ),
        one("D2", "P1", "lost", jan[9], jan[2], registered=True, registered_on=jan[9]),
        one(
            "D3",
            "P1",
            "won",
            jan[1],
            date(2026, 2, 1),
            amount=Decimal("250.25"),
            type="upsell",
            registered=True,
            registered_on=date(2025, 12, 30),
        ),
        one(
            "D4",
            "P1",
            "won",
            jan[1],
            date(2026, 2, 1),
            amount=Decimal(10),
            registered=True,
            registered_on=jan[19],
            csat=2,
        ),
        one("D5", "P1", "open", jan[4], date(2026, 3, 1), amount=Decimal(77), registered_on=jan[6]),
        one(
            "D6",
            None,
            "won",
            jan[4],
            jan[5],
            amount=Decimal(5),
            registered=True,
            registered_on=jan[5],
        ),
        one("D7", "P2", "lost", jan[4], jan[4], registered=True, registered_on=jan[5]),
        one("D8", "P2", "open", jan[5], None, registered=True),
        TrainingCompletion(partner_id="P1", course="c", completed_on=jan[4]),
        TrainingCompletion(partner_id="P3", course="c", completed_on=date(2026, 2, 2)),
        change("D1", "Prospecting", 2026, 1, 5, 9, 30),
        change("D1", "Won", 2026, 1, 5, 9, 59),
        change("D6", "Won", 2026, 1, 5, 9, 0),
        change("D2", "Lost", 2026, 1, 3, 23, 59, 59),
        change("DX", "Prospecting", 2026, 1, 5, 9, 45),
    ]
    with store.transaction() as connection:
        store.upsert(connection, records, "test")
        deals, changes = schema.deals, schema.stage_changes
        connection.execute(update(deals).where(deals.c.id == "D4").values(closed_on=None))
        connection.execute(
            update(changes).where(changes.c.deal_id == "D6").values(partner_key=None)
        )
    rebuild_everything(store)
    assert_rollups_as_defined(store)
    _, hour_rows, keys = stored_rollups(store)
    assert keys == {"", "P1", "P2", "P3"}
    assert hour_rows[("Won", datetime(2026, 1, 5, 9))] == 2  # D6's key was filled in
    with store.engine.connect() as connection:
        stale = connection.execute(
            select(func.count()).where(
                schema.stage_changes.c.deal_id == "D6", schema.stage_changes.c.partner_key == ""
            )
        )
        assert stale.scalar_one() == 1

"""The store: migrations from empty, idempotent batched upserts, deletions that never touch
survey answers, sync bookkeeping. Runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select

from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.sync import run_sync
from kpi import schema
from kpi import store as store_module
from kpi.migrate import current_revision, downgrade, head_revision, upgrade
from kpi.models import Deal, DealStatus, Partner, StageChange, SurveyResponse
from kpi.store import BATCH_SIZE, KINDS, Store, batched, open_store
from settings.app import AppConfig
from tests.csv_folder import DEAL_HEADER, minimal_folder, write_folder


def load(store: Store, folder: Path, accept_deletes: bool = False):  # type: ignore[no-untyped-def]
    return run_sync(
        store, FilesSource(folder, Normalizer(AppConfig())), accept_deletes=accept_deletes
    )


def test_migrations_create_every_table_from_empty(database_url: str) -> None:
    store = open_store(database_url)
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "partners",
        "deals",
        "stage_changes",
        "trainings",
        "survey_responses",
        "sync_state",
        "sync_runs",
        "send_log",
        "alembic_version",
    } <= tables
    assert current_revision(store.engine) == head_revision()
    indexes = {ix["name"] for ix in inspect(store.engine).get_indexes("deals")}
    assert {"ix_deals_partner_closed", "ix_deals_closed", "ix_deals_partner_open"} <= indexes
    store.engine.dispose()
    # Opening again is a no-op upgrade.
    again = open_store(database_url)
    assert current_revision(again.engine) == head_revision()
    again.engine.dispose()


def _indexes(engine: Engine) -> dict[str, tuple[str, ...]]:
    """Every secondary index of the record tables a store holds: name -> its columns."""
    found = inspect(engine)
    return {
        str(index["name"]): tuple(str(column) for column in index["column_names"])
        for name in schema.RECORD_TABLES
        for index in found.get_indexes(name)
    }


def test_the_migrations_make_the_indexes_schema_py_declares(database_url: str) -> None:
    """kpi/schema.py's indexes are those the migrations leave, no more and no fewer (an index
    dropped by a migration but still declared, or the other way round, would differ between a
    store and what the code says of it)."""
    store = open_store(database_url)
    declared = {
        str(index.name): tuple(column.name for column in index.columns)
        for table in schema.RECORD_TABLES.values()
        for index in table.indexes
    }
    assert _indexes(store.engine) == declared
    store.engine.dispose()


def test_migration_0014_drops_the_unread_left_at_index_and_its_downgrade_makes_it_again(
    database_url: str,
) -> None:
    store = open_store(database_url)
    left = ("left_at", "partner_key", "stage", "entered_at")
    assert "ix_stage_changes_left" not in _indexes(store.engine)
    downgrade(store.engine, "0013")
    assert _indexes(store.engine)["ix_stage_changes_left"] == left
    upgrade(store.engine)
    assert "ix_stage_changes_left" not in _indexes(store.engine)
    store.engine.dispose()


def test_loading_the_same_folder_twice_changes_nothing(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    first = load(store, folder)
    assert (first.objects["deals"].new, first.objects["partners"].new) == (3, 2)
    before = (store.records(Partner), store.records(Deal), store.records(StageChange))
    second = load(store, folder)
    for name, counts in second.objects.items():
        assert (counts.new, counts.updated, counts.deleted) == (0, 0, 0), name
    assert second.objects["deals"].unchanged == 3
    assert (store.records(Partner), store.records(Deal), store.records(StageChange)) == before


def test_a_changed_row_updates_and_a_removed_row_is_deleted(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    load(store, folder)
    write_folder(
        folder,
        deals=f"""{DEAL_HEADER}
            d1,p1,Acme big,250,USD,Closed Won,won,2026-01-01,2026-02-01,,new,Web,,true,,5
            d3,,Direct,50,,Proposal,open,2026-02-01,,2026-12-01,,,,false,,
            d4,p2,New one,70,,Prospecting,open,2026-04-01,,,,,,,,""",
    )
    # 1 of 3 deals is more than the deletion guard's default share (tests/test_guard.py)
    report = load(store, folder, accept_deletes=True).objects["deals"]
    assert (report.new, report.updated, report.unchanged, report.deleted) == (1, 1, 1, 1)
    deals = {deal.id: deal for deal in store.records(Deal)}
    assert set(deals) == {"d1", "d3", "d4"}
    assert deals["d1"].amount == Decimal("250")


def test_survey_answers_are_never_deleted(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    write_folder(
        folder,
        survey_responses="""partner_id,respondent,campaign_id,score,comment,submitted_at
            p1,a@acme.example,c1,9,,2026-03-01T12:00:00""",
    )
    load(store, folder)
    with store.transaction() as connection:  # an answer collected in Slack
        store.upsert(
            connection,
            [
                SurveyResponse(
                    id="slack-1",
                    partner_id="p1",
                    score=3,
                    submitted_at=datetime(2026, 3, 5, tzinfo=UTC),
                )
            ],
            source="slack",
        )
    (folder / "survey_responses.csv").write_text(
        "partner_id,respondent,campaign_id,score,comment,submitted_at\n"
    )
    report = load(store, folder)
    assert report.objects["survey_responses"].deleted == 0
    assert {answer.id for answer in store.records(SurveyResponse)} >= {"slack-1"}
    assert len(store.records(SurveyResponse)) == 2


def test_upserts_run_in_batches_and_count_exactly(store: Store) -> None:
    n = BATCH_SIZE * 2 + 7
    deals = [
        Deal(id=f"d{i}", status=DealStatus.OPEN, created_on=date(2026, 1, 1), amount=Decimal(i))
        for i in range(n)
    ]
    with store.transaction() as connection:
        first = store.upsert(connection, deals, "test")
    assert (first.new, first.updated, first.unchanged) == (n, 0, 0)
    changed = [
        d.model_copy(update={"amount": Decimal(-1)}) if i % 3 == 0 else d
        for i, d in enumerate(deals)
    ]
    with store.transaction() as connection:
        second = store.upsert(connection, changed, "test")
    expected_changed = len(range(0, n, 3))
    assert (second.new, second.updated, second.unchanged) == (
        0,
        expected_changed,
        n - expected_changed,
    )
    assert store.counts()["deals"] == n


def test_a_failed_transaction_writes_nothing(store: Store) -> None:
    deal = Deal(id="x", status=DealStatus.OPEN, created_on=date(2026, 1, 1))
    try:
        with store.transaction() as connection:
            store.upsert(connection, [deal], "test")
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    assert store.counts()["deals"] == 0


def test_watermarks_move_with_their_transaction(store: Store) -> None:
    with store.transaction() as connection:
        store.set_watermark(connection, "salesforce", "Opportunity", "2026-01-01T00:00:00Z")
    try:
        with store.transaction() as connection:
            store.set_watermark(connection, "salesforce", "Opportunity", "2026-02-01T00:00:00Z")
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    with store.transaction() as connection:
        assert store.watermark(connection, "salesforce", "Opportunity") == "2026-01-01T00:00:00Z"
        assert store.watermark(connection, "salesforce", "Account") is None


def test_sync_runs_record_outcome_and_freshness(store: Store, tmp_path: Path) -> None:
    assert store.data_as_of() is None
    load(store, minimal_folder(tmp_path))
    run = store.last_sync()
    assert run is not None and run.status == "ok" and run.source == "files"
    assert run.report["objects"]["deals"]["new"] == 3
    assert store.data_as_of() == run.finished_at
    assert run.finished_at is not None and run.finished_at.tzinfo is UTC


def test_a_send_log_key_is_claimed_once(store: Store) -> None:
    assert store.claim("digest:weekly:C1:2026-W47", "digest", "replica-a") is True
    assert store.claim("digest:weekly:C1:2026-W47", "digest", "replica-b") is False
    store.mark_sent("digest:weekly:C1:2026-W47", "1700000000.000100")
    assert store.claim("digest:weekly:C1:2026-W48", "digest", "replica-b") is True


def test_the_audit_log_keeps_every_question(store: Store) -> None:
    store.audit("U1", "/partner-kpi acme", True, "workspace member", channel_id="C1")
    store.audit("U2", "/partner-kpi top", False, "not on the access list")
    entries = store.audit_entries()
    assert [(e["user_id"], e["allowed"]) for e in entries] == [("U2", False), ("U1", True)]
    assert entries[1]["request"] == "/partner-kpi acme" and entries[1]["channel_id"] == "C1"


def test_a_run_killed_mid_way_is_marked_interrupted_by_the_next(store: Store) -> None:
    killed = store.start_sync("files", full=False)  # its process never finishes it
    running = store.start_sync("files", full=False)
    store.finish_sync(running, "ok", {})
    with store.engine.connect() as connection:
        rows = {
            row.id: (row.status, row.error) for row in connection.execute(schema.sync_runs.select())
        }
    assert rows[killed] == (
        "interrupted",
        "the process ended before this sync finished (noticed by the next sync)",
    )
    assert rows[running] == ("ok", None)


def _history(deal_id: str, *stages: str) -> list[StageChange]:
    return [
        StageChange(deal_id=deal_id, stage=stage, entered_at=datetime(2026, 1, day + 1, tzinfo=UTC))
        for day, stage in enumerate(stages)
    ]


def test_the_connectors_deletions_keep_other_sources_and_other_deals(store: Store) -> None:
    deals = [Deal(id=i, status=DealStatus.OPEN, created_on=date(2026, 1, 1)) for i in "abc"]
    with store.transaction() as connection:
        store.upsert(connection, deals, "crm")
        store.upsert(connection, _history("a", "Lead", "Won") + _history("b", "Lead"), "crm")
        store.upsert(connection, _history("c", "Lead", "Demo"), "files")
    with store.transaction() as connection:
        keep = {KINDS[StageChange].key(_history("a", "Lead")[0])}
        assert store.delete_stale_history(connection, "crm", ["a", "c"], keep) == 1
    assert sorted((c.deal_id, c.stage) for c in store.stage_history(["a", "c"])) == [
        ("a", "Lead"),
        ("c", "Demo"),
        ("c", "Lead"),
    ]
    with store.transaction() as connection:
        assert store.delete_records(connection, Deal, "files", ["a"]) == 0  # not its source
        assert store.delete_records(connection, Deal, "crm", ["a", "unknown"]) == 1
    assert store.stage_history(["a"]) == []  # a deleted deal takes its history
    assert store.stored_ids(Deal, "crm", ["a", "b", "c"]) == {"b", "c"}
    with store.transaction() as connection:
        connection.execute(schema.deals.delete().where(schema.deals.c.id.in_(["b", "c"])))
        assert store.delete_orphan_history(connection, "crm") == 1  # b's, not c's (files)
    assert [c.deal_id for c in store.stage_history(["b", "c"])] == ["c", "c"]  # unordered


def test_stored_ids_reads_past_one_batch(store: Store) -> None:
    ids = [f"p{i}" for i in range(BATCH_SIZE + 3)]
    with store.transaction() as connection:
        store.upsert(
            connection, [Partner(id=i, name=i, joined_on=date(2026, 1, 1)) for i in ids], "crm"
        )
    asked = [*ids, "p-unknown"]
    assert store.stored_ids(Partner, "crm", asked) == set(ids)
    assert store.stored_ids(Partner, "files", asked) == set()


def test_the_pipeline_order_is_replaced_and_first_occurrences_win(store: Store) -> None:
    table = schema.pipeline_stages
    with store.transaction() as connection:
        store.replace_pipeline(connection, "crm", ["Old"])
        store.replace_pipeline(connection, "files", ["Lead"])
        store.replace_pipeline(connection, "crm", ["Lead", "Demo", "Lead", "Won"])
        rows = connection.execute(table.select().order_by(table.c.source, table.c.sort_order)).all()
    assert [(r.source, r.stage, r.sort_order) for r in rows] == [
        ("crm", "Lead", 0),
        ("crm", "Demo", 1),
        ("crm", "Won", 2),
        ("files", "Lead", 0),
    ]


def test_batched_cuts_any_iterable_into_lists_of_the_size() -> None:
    assert list(batched(iter(range(5)), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batched([], 3)) == []


def test_insert_or_keep_keeps_the_stored_row_and_insert_or_update_replaces_it(
    store: Store,
) -> None:
    table = schema.pipeline_stages
    keys = ["source", "stage"]
    first = [{"source": "crm", "stage": "Lead", "sort_order": 0}]
    with store.transaction() as connection:
        store.insert_or_keep(connection, table, first, keys)
        store.insert_or_keep(connection, table, [{**first[0], "sort_order": 5}], keys)
        kept = connection.execute(select(table.c.sort_order)).scalars().all()
        store.insert_or_update(
            connection,
            table,
            [{**first[0], "sort_order": 7}, {"source": "crm", "stage": "Won", "sort_order": 1}],
            keys,
        )
        rows = connection.execute(select(table.c.stage, table.c.sort_order)).all()
    assert kept == [0]
    assert sorted(map(tuple, rows)) == [("Lead", 7), ("Won", 1)]


@pytest.mark.parametrize(
    "entered_at",
    [
        datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 1, 9, 30, 5, 123456, tzinfo=timezone(timedelta(hours=-7))),
        datetime(2026, 3, 1, 23, 59, 59),  # naive: UTC already
    ],
)
def test_a_stage_changes_stored_columns_are_those_of_every_record(entered_at: datetime) -> None:
    """`RecordKind.values` makes a stage change's columns without pydantic: the same as the
    generic path, the model's fields through `_to_column`, would."""
    change = StageChange(deal_id="006A", stage="Closed Won", entered_at=entered_at)
    generic = {"id": KINDS[StageChange].key(change)}
    generic |= {name: store_module._to_column(value) for name, value in change}
    assert KINDS[StageChange].values(change) == generic
    assert list(KINDS[StageChange].values(change)) == list(generic)


def test_a_large_write_does_not_leave_a_large_write_ahead_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps a grown WAL file at its size unless told a limit: after a checkpoint, the
    next write cuts it back to `WAL_KEPT_BYTES`."""
    monkeypatch.setattr(store_module, "WAL_KEPT_BYTES", 64 * 1024)
    path = tmp_path / "kpi.db"
    store = open_store(f"sqlite:///{path}")
    joined = date(2026, 1, 5)
    partners = [Partner(id=f"p{i}", name="x" * 2_000, joined_on=joined) for i in range(1_000)]
    with store.transaction() as connection:
        store.upsert(connection, partners, "files")
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 1_000_000
    with store.transaction() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    with store.transaction() as connection:
        store.upsert(connection, [Partner(id="p-last", name="y", joined_on=joined)], "files")
    assert wal.stat().st_size <= 64 * 1024

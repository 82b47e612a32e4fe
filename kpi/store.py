"""The store: the local copy of the CRM's partner data, on SQLite or PostgreSQL.

Connectors write normalized records through `upsert` (batched, keyed by CRM id, idempotent)
and reach every other row through the named methods here (watermarks, deletions, stage history,
the pipeline's order); everything else reads. The schema lives in `kpi.schema` and is created by
migrations at open. `conflict_insert` is the one INSERT … ON CONFLICT of both databases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, runtime_checkable

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Update,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, NoSuchModuleError

from kpi import rollup_marks, schema
from kpi.deferred_ddl import dropped
from kpi.migrate import upgrade
from kpi.models import (
    Customer,
    Deal,
    Goal,
    Partner,
    Record,
    StageChange,
    SupportTicket,
    SurveyResponse,
    TrainingCompletion,
)
from kpi.new_rows import NewRows, next_moments
from kpi.read_keys import ReadKeys
from kpi.record_keys import natural_key
from kpi.sqlite_binds import driver_rows
from kpi.store_faults import (
    describe,
    first_line,
    is_locked,
    location,
    lock_holders,
)
from kpi.wal_checkpoint import Checkpoints
from settings.database import supported_list

BATCH_SIZE = 1000
IN_BATCH = 5000  # ids asked about in one query (SQLite takes 32,766 parameters)
SWEEP_BATCH = 50_000  # stored ids checked against a sweep's `keep` at a time
DEFAULT_LOCK_TIMEOUT_SECONDS = 30.0  # how long a writer waits for another one
BUSY_TIMEOUT_KEY = "busy_timeout_ms"  # a SQLite connection's configured wait, in its info
#: The size SQLite cuts its write-ahead log back to once a checkpoint has emptied it: a large
#: load grows the log to its own size (over 1 GB for a million deals), which would otherwise
#: stay on disk for good.
WAL_KEPT_BYTES = 64 * 1024 * 1024
#: The status of a sync run whose process ended before it finished.
INTERRUPTED = "interrupted"
INTERRUPTED_REASON = "the process ended before this sync finished (noticed by the next sync)"
_DIALECT_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

R = TypeVar("R", bound=Record)
T = TypeVar("T")
#: An INSERT that takes ON CONFLICT clauses, in the store's dialect.
ConflictInsert: TypeAlias = postgresql.Insert | sqlite.Insert


@runtime_checkable
class KeySet(Protocol):
    """The ids a sync read, when it can tell many of them apart at once (a sweep's `keep`)."""

    def absent(self, keys: list[str]) -> list[str]:
        """Those of `keys` that are not in the set, in order."""
        ...


class StoreError(Exception):
    """The database cannot be reached or used; the message says which and why."""


@dataclass
class UpsertCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Deals whose stage changes were written but whose stays (`left_at`) the writing could
    #: not settle by itself: `Store.refresh_stays` them. None: any deal might need it.
    unsettled: set[str] | None = field(default_factory=set)

    def add(self, other: UpsertCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        if self.unsettled is None or other.unsettled is None:
            self.unsettled = None
        else:
            self.unsettled |= other.unsettled


@dataclass(frozen=True)
class RecordKind(Generic[R]):
    """How one kind of record maps onto its table."""

    model: type[R]
    table: Table

    def key(self, record: R) -> str:
        if isinstance(record, StageChange):
            return natural_key(
                record.deal_id, record.stage, _utc_naive(record.entered_at).isoformat()
            )
        if isinstance(record, TrainingCompletion):
            key = natural_key(record.partner_id, record.course, record.completed_on.isoformat())
            return repeat_key(key, record.occurrence)
        if isinstance(record, Goal):
            return goal_key(record.partner_id, record.kpi, record.start_on, record.end_on)
        return str(getattr(record, "id"))  # noqa: B009 - every other record has an id

    def to_row(self, record: R, source: str) -> dict[str, Any]:
        return finish_row(self.values(record), source)

    def values(self, record: R) -> dict[str, Any]:
        """The record's stored columns (its id and fields), without `row_hash` and `source`:
        what `Store.upsert_rows` takes."""
        if isinstance(record, StageChange):  # millions in a large sync: without pydantic
            return stage_change_values(record.deal_id, record.stage, record.entered_at)
        row: dict[str, Any] = {"id": self.key(record)}
        for name, value in record:
            row[name] = _to_column(value)
        return row

    def from_row(self, row: Any) -> R:
        values = {name: _from_column(getattr(row, name)) for name in self.model.model_fields}
        return self.model.model_validate(values)


KINDS: dict[type[Record], RecordKind[Any]] = {
    Partner: RecordKind(Partner, schema.partners),
    Deal: RecordKind(Deal, schema.deals),
    StageChange: RecordKind(StageChange, schema.stage_changes),
    TrainingCompletion: RecordKind(TrainingCompletion, schema.trainings),
    SurveyResponse: RecordKind(SurveyResponse, schema.survey_responses),
    Customer: RecordKind(Customer, schema.customers),
    SupportTicket: RecordKind(SupportTicket, schema.support_tickets),
    Goal: RecordKind(Goal, schema.goals),
}


def stage_change_values(deal_id: str, stage: str, entered_at: datetime) -> dict[str, Any]:
    """A stage change's stored columns, as `RecordKind.values` makes them of any record."""
    entered = _utc_naive(entered_at)
    return {
        "id": natural_key(deal_id, stage, entered.isoformat()),
        "deal_id": deal_id,
        "stage": stage,
        "entered_at": entered,
    }


def repeat_key(key: str, occurrence: int) -> str:
    """The id of the `occurrence`-th of identical records (training completions): the first
    keeps the key it always had."""
    return key if occurrence == 1 else natural_key(key, str(occurrence))


def finish_row(values: dict[str, Any], source: str) -> dict[str, Any]:
    """`values` (a record's stored columns) with its `row_hash` (unless it has one: the files
    source's is a hash of what it read, `connectors.fingerprints`) and `source`, in place."""
    if "row_hash" not in values:
        values["row_hash"] = _row_hash(values)
    values["source"] = source
    return values


def goal_key(partner_id: str | None, kpi: str, start: date, end: date) -> str:
    """A goal's identity: one partner (or the program), KPI and date range, however the
    period was written (`2026-Q3` and `2026-07-01..2026-09-30` are one range)."""
    return natural_key(partner_id or "", kpi, start.isoformat(), end.isoformat())


@dataclass(frozen=True)
class Sweep:
    """What a full snapshot would delete from one table: the ids gone, of `stored` rows."""

    table: str
    gone: list[str]
    stored: int


@dataclass
class SyncRun:
    id: int
    source: str
    full: bool
    status: str
    started_at: datetime
    finished_at: datetime | None
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Store:
    def __init__(self, engine: Engine, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> None:
        self.engine = engine
        self.lock_timeout = lock_timeout
        self.checkpoints = Checkpoints(engine)  # a bulk load's, on threads (`bulk_transaction`)
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, list[str]]] = {}

    def fault(self, error: DBAPIError) -> StoreError:
        """The one-sentence StoreError for a database fault, naming who holds a lock when the
        database can tell."""
        where = location(self.engine.url)
        holders: list[str] = []
        if is_locked(error):
            try:
                with self.engine.connect() as connection:
                    holders = lock_holders(connection)
            except DBAPIError:
                holders = []
        return StoreError(describe(error, where, self.lock_timeout, holders))

    # --- writing -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def bulk_transaction(self) -> Iterator[Connection]:
        """`transaction` for a load of many rows: on SQLite its commit leaves the copy of the
        write-ahead log into the database file to a thread (`kpi.wal_checkpoint`), which
        `checkpoints.wait()` joins."""
        with (
            self.engine.connect() as connection,
            self.checkpoints.after_commit(connection),
            connection.begin(),
        ):
            yield connection

    def upsert(
        self, connection: Connection, records: Iterable[Record], source: str
    ) -> UpsertCounts:
        """Inserts new records and updates changed ones, in batches; unchanged rows are not written.

        Records may be of several kinds: each kind's are written in one `upsert_rows` (its
        rollup marks once), in the order the kinds first come.
        """
        counts = UpsertCounts()
        by_kind: dict[type[Record], list[dict[str, Any]]] = {}
        for record in records:
            model = type(record)
            by_kind.setdefault(model, []).append(KINDS[model].values(record))
        for model, values in by_kind.items():
            counts.add(self.upsert_rows(connection, model, values, source))
        return counts

    def upsert_rows(
        self,
        connection: Connection,
        model: type[Record],
        rows: Iterable[dict[str, Any]],
        source: str,
        batch_size: int = BATCH_SIZE,
    ) -> UpsertCounts:
        """`upsert` for records already in their stored columns (`RecordKind.values`, as a
        bulk reader makes them without building the model), `batch_size` at a time. Their ids
        should be distinct (a bulk reader's are): into a table that was empty, every row is
        written as new without asking the store for stored ones (a repeated id still replaces
        the earlier row, but counts as new)."""
        return self.upsert_batches(connection, model, batched(rows, batch_size), source)

    def upsert_batches(
        self,
        connection: Connection,
        model: type[Record],
        batches: Iterable[list[dict[str, Any]] | NewRows],
        source: str,
    ) -> UpsertCounts:
        """`upsert_rows` of rows already in batches; a batch of `NewRows` (a reading process's
        deals or stage changes, into a table that was empty, on SQLite) is inserted as it is."""
        kind = KINDS[model]
        counts = UpsertCounts()
        empty = _is_empty(connection, kind.table)
        marks = rollup_marks.Marks(connection, kind.table)
        stays = _Stays(empty)
        with marks.writing():
            for batch in batches:
                if isinstance(batch, NewRows):
                    if not empty:
                        raise ValueError("new rows as columns go into an empty table")
                    written = self._insert_new_rows(connection, kind.table, batch, marks, source)
                else:
                    for row in batch:
                        finish_row(row, source)
                    written = self._upsert_batch(connection, kind, batch, marks, compare=not empty)
                written.unsettled = stays.unsettled(written.unsettled)
                counts.add(written)
        return counts

    def _upsert_batch(
        self,
        connection: Connection,
        kind: RecordKind[Any],
        batch: list[dict[str, Any]],
        marks: rollup_marks.Marks,
        compare: bool = True,
    ) -> UpsertCounts:
        """One batch written while `marks` is `writing`."""
        rows: dict[str, dict[str, Any]] = {}
        for row in batch:
            rows[row["id"]] = row  # a later duplicate in the same batch wins
        table = kind.table
        previous = [table.c[rollup_marks.MARKED[table.name]]] if marks.batched else []
        found: Iterable[Any] = ()
        if compare:
            found = connection.execute(
                select(table.c.id, table.c.row_hash, *previous).where(table.c.id.in_(list(rows)))
            )
        stored: dict[str, str] = {}
        old: dict[str, Any] = {}
        for found_row in found:
            stored[found_row[0]] = found_row[1]
            if marks.batched:
                old[found_row[0]] = found_row[2]
        changed = [row for key, row in rows.items() if stored.get(key) != row["row_hash"]]
        if changed and table is schema.stage_changes:
            _add_partner_keys(connection, changed)
            _first_stays(changed)
        if changed:
            marks.before_write()
        self.insert_or_update(connection, table, changed)
        if changed and marks.batched:
            marks.add(changed, old)
        updated = sum(1 for row in changed if row["id"] in stored)
        unsettled = {row["deal_id"] for row in changed} if table is schema.stage_changes else set()
        return UpsertCounts(
            new=len(changed) - updated,
            updated=updated,
            unchanged=len(rows) - len(changed),
            unsettled=unsettled,
        )

    def _insert_new_rows(
        self,
        connection: Connection,
        table: Table,
        batch: NewRows,
        marks: rollup_marks.Marks,
        source: str,
    ) -> UpsertCounts:
        """A reading process's batch of new deals or stage changes written while `marks` is
        `writing`, as `_upsert_batch` writes them: stage changes with their deals' partner
        keys and their hours marked, deals with their partners marked."""
        if connection.dialect.name != "sqlite" or table.name not in NEW_ROWS_TABLES:
            raise ValueError(f"new rows as columns are SQLite's {' or '.join(NEW_ROWS_TABLES)}")
        if not batch.ids:
            return UpsertCounts()
        columns: dict[str, Sequence[Any]] = {**batch.columns, "source": [source] * len(batch)}
        unsettled: set[str] = set()
        if table is schema.stage_changes:
            deal_ids = batch.columns["deal_id"]
            partner_of = _partner_keys(connection, deal_ids)
            columns["partner_key"] = [partner_of.get(deal_id) for deal_id in deal_ids]
            marks.add_hours(batch.hours)
            unsettled = set(deal_ids)
        elif marks.history():  # a deal's stage changes would need its triggers' work
            raise ValueError("new deals as columns go into a store without stage changes")
        else:
            marks.partners.update(key or "" for key in batch.columns["partner_id"])
        marks.before_write()
        sql, names = self._compiled_upsert(connection, table, tuple(columns))
        rows = list(zip(*(columns[name] for name in names), strict=True))
        connection.exec_driver_sql(sql, rows)
        return UpsertCounts(new=len(batch), unsettled=unsettled)

    def insert_or_update(
        self,
        connection: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        keys: Sequence[str] = ("id",),
    ) -> None:
        """Inserts `rows` (all naming the same columns); where a row with the same `keys` is
        stored, updates it to the new one (columns the rows do not name are kept)."""
        if not rows:
            return
        _execute_many(connection, self._upsert_statement(table, list(rows[0]), keys), rows)

    def _compiled_upsert(
        self, connection: Connection, table: Table, names: tuple[str, ...]
    ) -> tuple[str, list[str]]:
        """`_upsert_statement` as SQL text and the order of the columns it binds (once)."""
        key = (table.name, names)
        found = self._compiled.get(key)
        if found is None:
            statement = self._upsert_statement(table, names)
            compiled = statement.compile(dialect=connection.dialect, column_keys=list(names))
            found = self._compiled[key] = (compiled.string, list(compiled.positiontup or []))
        return found

    def _upsert_statement(
        self, table: Table, names: Sequence[str], keys: Sequence[str] = ("id",)
    ) -> ConflictInsert:
        """`insert_or_update`'s statement for rows naming the columns `names`."""
        statement = self.conflict_insert(table)
        columns = {name: statement.excluded[name] for name in names if name not in keys}
        return statement.on_conflict_do_update(index_elements=list(keys), set_=columns)

    def insert_or_keep(
        self,
        connection: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        keys: Sequence[str],
    ) -> None:
        """Inserts `rows` in batches; where a row with the same `keys` is stored, it stays as it
        was (so that writing the same rows twice is harmless)."""
        statement = self.conflict_insert(table).on_conflict_do_nothing(index_elements=list(keys))
        for batch in batched(rows, BATCH_SIZE):
            connection.execute(statement, batch)

    def conflict_insert(self, table: Table) -> ConflictInsert:
        """An INSERT into `table` that takes ON CONFLICT clauses (`on_conflict_do_update`,
        `on_conflict_do_nothing`), in SQLite's or PostgreSQL's dialect."""
        dialect = self.engine.dialect.name
        insert = _DIALECT_INSERTS.get(dialect)
        if insert is None:
            raise StoreError(f"the {dialect} database is not supported; use SQLite or PostgreSQL.")
        statement: ConflictInsert = insert(table)
        return statement

    @contextmanager
    def indexes_deferred(
        self, connection: Connection, model: type[Record], keep: Container[str] = ()
    ) -> Iterator[None]:
        """On SQLite, an empty table's secondary indexes (but those named in `keep`, which the
        writing reads through) dropped while a bulk load fills it and built again afterwards,
        inside the caller's transaction: one sorted build per index instead of a B-tree insert
        per row and index. A table that holds rows keeps them. The caller's transaction must
        roll back when the block raises: the indexes are then not built again, the rollback
        brings them back."""
        table = KINDS[model].table
        if connection.dialect.name != "sqlite" or not _is_empty(connection, table):
            yield
            return
        with dropped(connection, "index", table.name, keep, rolls_back=True):
            yield

    def refresh_stays(self, connection: Connection, deal_ids: Sequence[str] | None = None) -> None:
        """Sets each stage change's `left_at` to the start of the deal's next change (the
        earliest later `entered_at`), writing only the rows whose value changes.

        Called after a sync with the deals whose history it touched (None: every deal).
        """
        if deal_ids is None:
            connection.execute(_stays_update(None))
            return
        for batch in batched(deal_ids, BATCH_SIZE):
            connection.execute(_stays_update(batch))

    def stored_hashes(
        self, connection: Connection, model: type[Record], keys: list[str]
    ) -> dict[str, str]:
        """The row hashes of those of `keys` that are stored as records of `model`."""
        table = KINDS[model].table
        found: dict[str, str] = {}
        for batch in batched(keys, IN_BATCH):
            if connection.dialect.name == "sqlite":
                found.update(_sqlite_hashes(connection, table.name, batch))
                continue
            query = select(table.c.id, table.c.row_hash).where(table.c.id.in_(batch))
            found.update({key: hashed for key, hashed in connection.execute(query)})
        return found

    def holds_none(self, connection: Connection, model: type[Record]) -> bool:
        """Whether no record of this kind is stored, of any source."""
        return _is_empty(connection, KINDS[model].table)

    def stored_count(self, connection: Connection, model: type[Record], source: str) -> int:
        """How many rows of this kind `source` has stored."""
        table = KINDS[model].table
        query = select(func.count()).select_from(table).where(table.c.source == source)
        return int(connection.execute(query).scalar_one())

    def missing(
        self,
        connection: Connection,
        model: type[Record],
        source: str,
        keep: Container[str],
        stored_before: int | None = None,
    ) -> Sweep:
        """`source`'s stored rows of this kind whose id is not in `keep` (a full snapshot's
        sweep), of how many it stored before the sync (`stored_before`, default: now).
        Survey responses exist only in the store and are never swept."""
        table = KINDS[model].table
        if model is SurveyResponse:
            return Sweep(table.name, [], 0)
        stored = connection.execute(select(table.c.id).where(table.c.source == source)).scalars()
        count = 0
        gone: list[str] = []
        for batch in batched(stored, SWEEP_BATCH):
            count += len(batch)
            if isinstance(keep, KeySet):
                gone.extend(keep.absent(batch))
            else:
                gone.extend(key for key in batch if key not in keep)
        return Sweep(table.name, gone, count if stored_before is None else stored_before)

    def delete_missing(
        self, connection: Connection, model: type[Record], source: str, keep: Container[str]
    ) -> int:
        """Deletes `source`'s rows of this kind whose id is not in `keep`, unguarded (the
        syncs sweep through `missing`, the deletion guard and `delete_swept`)."""
        return self.delete_swept(connection, model, self.missing(connection, model, source, keep))

    def delete_swept(self, connection: Connection, model: type[Record], sweep: Sweep) -> int:
        """Deletes the rows a sweep found gone; returns how many."""
        table = KINDS[model].table
        for batch in batched(sweep.gone, BATCH_SIZE):
            connection.execute(delete(table).where(table.c.id.in_(batch)))
        return len(sweep.gone)

    def delete_records(
        self, connection: Connection, model: type[Record], source: str, ids: Sequence[str]
    ) -> int:
        """Deletes `source`'s records of `model` with these ids; a deal takes its stage history,
        a customer its support tickets from `source`. Returns how many records of `model` were
        deleted."""
        table = KINDS[model].table
        changes = schema.stage_changes
        tickets = schema.support_tickets
        deleted = 0
        for batch in batched(ids, BATCH_SIZE):
            result = connection.execute(
                delete(table).where(table.c.id.in_(batch), table.c.source == source)
            )
            deleted += result.rowcount or 0
            if model is Deal:
                connection.execute(delete(changes).where(changes.c.deal_id.in_(batch)))
            if model is Customer:
                connection.execute(
                    delete(tickets).where(
                        tickets.c.customer_id.in_(batch), tickets.c.source == source
                    )
                )
        return deleted

    def stored_ids(self, model: type[Record], source: str, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that `source` has stored as records of `model`."""
        table = KINDS[model].table
        found: set[str] = set()
        with self.engine.connect() as connection:
            for batch in batched(ids, BATCH_SIZE):
                query = select(table.c.id).where(table.c.id.in_(batch), table.c.source == source)
                found.update(connection.execute(query).scalars())
        return found

    def stage_history(
        self, deal_ids: Iterable[str], connection: Connection | None = None
    ) -> list[StageChange]:
        """The stored stage changes of these deals (read on `connection`, in its transaction,
        when given)."""
        kind: RecordKind[StageChange] = KINDS[StageChange]
        found: list[StageChange] = []
        with nullcontext(connection) if connection else self.engine.connect() as reading:
            for batch in batched(deal_ids, BATCH_SIZE):
                rows = reading.execute(select(kind.table).where(kind.table.c.deal_id.in_(batch)))
                found.extend(kind.from_row(row) for row in rows)
        return found

    def delete_stale_history(
        self, connection: Connection, source: str, deal_ids: Sequence[str], keep: Container[str]
    ) -> int:
        """Deletes the stage changes `source` stored for these deals whose id is not in `keep`
        (a re-read history replaces the stored one); returns how many."""
        table = schema.stage_changes
        deleted = 0
        for batch in batched(deal_ids, BATCH_SIZE):
            stored = connection.execute(
                select(table.c.id).where(table.c.deal_id.in_(batch), table.c.source == source)
            ).scalars()
            stale = [key for key in stored if key not in keep]
            if stale:
                connection.execute(delete(table).where(table.c.id.in_(stale)))
                deleted += len(stale)
        return deleted

    def delete_orphan_history(self, connection: Connection, source: str) -> int:
        """Deletes `source`'s stage changes of deals the store no longer has; returns how many."""
        table = schema.stage_changes
        result = connection.execute(
            delete(table).where(
                table.c.source == source, table.c.deal_id.not_in(select(schema.deals.c.id))
            )
        )
        return result.rowcount or 0

    def replace_pipeline(self, connection: Connection, source: str, stages: Sequence[str]) -> None:
        """Stores the CRM's own stage order (first occurrence wins) for `source`."""
        table = schema.pipeline_stages
        connection.execute(delete(table).where(table.c.source == source))
        ordered = list(dict.fromkeys(stages))
        if ordered:
            connection.execute(
                table.insert(),
                [
                    {"source": source, "stage": stage, "sort_order": n}
                    for n, stage in enumerate(ordered)
                ],
            )

    def unknown_reference_warnings(self, connection: Connection) -> list[str]:
        """Records that name a partner or deal the store does not have: kept, but worth a word."""
        checks = [
            ("deal(s)", schema.deals.c.partner_id, schema.partners.c.id, "partner"),
            ("stage change(s)", schema.stage_changes.c.deal_id, schema.deals.c.id, "deal"),
            (
                "training completion(s)",
                schema.trainings.c.partner_id,
                schema.partners.c.id,
                "partner",
            ),
            (
                "survey answer(s)",
                schema.survey_responses.c.partner_id,
                schema.partners.c.id,
                "partner",
            ),
            ("customer(s)", schema.customers.c.partner_id, schema.partners.c.id, "partner"),
            (
                "support ticket(s)",
                schema.support_tickets.c.customer_id,
                schema.customers.c.id,
                "customer",
            ),
        ]
        warnings = []
        for what, reference, target, noun in checks:
            orphans = connection.execute(
                select(func.count())
                .select_from(reference.table)
                .where(reference.is_not(None), reference.not_in(select(target)))
            ).scalar_one()
            if orphans:
                warnings.append(f"{orphans} {what} name an unknown {noun}; they are kept")
        return warnings

    # --- sync bookkeeping ----------------------------------------------------------------

    def start_sync(self, source: str, full: bool) -> int:
        """Records a new run; an earlier run still `running` was killed mid-way (a run that
        ends records its outcome, and a concurrent one that is alive overwrites this mark)."""
        runs = schema.sync_runs
        with self.transaction() as connection:
            connection.execute(
                update(runs)
                .where(runs.c.status == "running")
                .values(status=INTERRUPTED, error=INTERRUPTED_REASON)
            )
            result = connection.execute(
                schema.sync_runs.insert().values(
                    source=source, full=full, status="running", started_at=_now()
                )
            )
            (run_id,) = result.inserted_primary_key or (0,)
            return int(run_id)

    def finish_sync(
        self, run_id: int, status: str, report: dict[str, Any], error: str | None = None
    ) -> None:
        with self.transaction() as connection:
            connection.execute(
                update(schema.sync_runs)
                .where(schema.sync_runs.c.id == run_id)
                .values(status=status, finished_at=_now(), report=report, error=error)
            )

    def last_sync(self, status: str | None = "ok") -> SyncRun | None:
        """The latest finished sync (of any outcome when `status` is None)."""
        found = self.recent_syncs(1, status)
        return found[0] if found else None

    def recent_syncs(self, count: int, status: str | None = None) -> list[SyncRun]:
        """The latest `count` finished syncs (of `status`, or any), newest first."""
        runs = schema.sync_runs
        query = select(runs).where(runs.c.finished_at.is_not(None))
        if status is not None:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.finished_at.desc(), runs.c.id.desc()).limit(count)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            SyncRun(
                id=row.id,
                source=row.source,
                full=row.full,
                status=row.status,
                started_at=row.started_at.replace(tzinfo=UTC),
                finished_at=row.finished_at.replace(tzinfo=UTC),
                report=row.report or {},
                error=row.error,
            )
            for row in rows
        ]

    def data_as_of(self) -> datetime | None:
        """When the store last finished a sync successfully."""
        run = self.last_sync()
        return run.finished_at if run else None

    def watermark(self, connection: Connection, source: str, obj: str) -> str | None:
        state = schema.sync_state
        return connection.execute(
            select(state.c.watermark).where(state.c.source == source, state.c.object == obj)
        ).scalar_one_or_none()

    def set_watermark(
        self, connection: Connection, source: str, obj: str, value: str | None
    ) -> None:
        """Sets the watermark inside the caller's transaction, with the rows it covers."""
        state = schema.sync_state
        connection.execute(delete(state).where(state.c.source == source, state.c.object == obj))
        connection.execute(
            state.insert().values(source=source, object=obj, watermark=value, updated_at=_now())
        )

    # --- the bot's bookkeeping -----------------------------------------------------------

    def claim(
        self, key: str, kind: str, claimed_by: str, detail: dict[str, Any] | None = None
    ) -> bool:
        """Claims `key` in the send log; True for the one caller that claimed it first."""
        log = schema.send_log
        insert = self.conflict_insert(log).values(
            key=key, kind=kind, claimed_by=claimed_by, claimed_at=_now(), detail=detail
        )
        with self.transaction() as connection:
            claimed = insert.on_conflict_do_nothing(index_elements=["key"]).returning(log.c.key)
            return connection.execute(claimed).first() is not None

    def mark_sent(self, key: str, slack_ts: str | None) -> None:
        log = schema.send_log
        with self.transaction() as connection:
            connection.execute(
                update(log).where(log.c.key == key).values(posted_at=_now(), slack_ts=slack_ts)
            )

    def claim_state(self, key: str) -> dict[str, Any] | None:
        """The send log's row for `key` (claimed_by, claimed_at, posted_at, slack_ts as naive
        UTC), or None when nobody has claimed it."""
        log = schema.send_log
        with self.engine.connect() as connection:
            row = connection.execute(select(log).where(log.c.key == key)).first()
        return dict(row._mapping) if row is not None else None

    def claims(self, kind: str, prefix: str = "", unposted: bool = False) -> list[dict[str, Any]]:
        """Every send-log row of `kind` whose key starts with `prefix` (as claim_state); with
        `unposted`, only the claims not yet marked sent."""
        log = schema.send_log
        query = select(log).where(log.c.kind == kind)
        if prefix:
            query = query.where(log.c.key.startswith(prefix, autoescape=True))
        if unposted:
            query = query.where(log.c.posted_at.is_(None))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query.order_by(log.c.key))]

    def reclaim_stale(self, key: str, claimed_by: str, older_than: timedelta) -> bool:
        """Takes over a claim that was never posted and is older than `older_than` (its claimer
        crashed between claim and post); True for the one caller that took it over."""
        log = schema.send_log
        now = _now()
        statement = (
            update(log)
            .where(
                log.c.key == key,
                log.c.posted_at.is_(None),
                log.c.claimed_at < now - older_than,
            )
            .values(claimed_by=claimed_by, claimed_at=now)
            .returning(log.c.key)
        )
        with self.transaction() as connection:
            return connection.execute(statement).first() is not None

    def audit(
        self,
        user_id: str,
        request: str,
        allowed: bool,
        reason: str | None = None,
        user_name: str | None = None,
        channel_id: str | None = None,
    ) -> None:
        with self.transaction() as connection:
            connection.execute(
                schema.audit_log.insert().values(
                    at=_now(),
                    user_id=user_id,
                    user_name=user_name,
                    channel_id=channel_id,
                    request=request,
                    allowed=allowed,
                    reason=reason,
                )
            )

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        log = schema.audit_log
        query = select(log).order_by(log.c.id.desc()).limit(limit)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    # --- reading -------------------------------------------------------------------------

    def records(self, model: type[R], ids: Sequence[str] | None = None) -> list[R]:
        kind: RecordKind[R] = KINDS[model]
        query = select(kind.table)
        if ids is not None:
            query = query.where(kind.table.c.id.in_(list(ids)))
        with self.engine.connect() as connection:
            return [
                kind.from_row(row) for row in connection.execute(query.order_by(kind.table.c.id))
            ]

    def partners(self) -> list[Partner]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(schema.partners).order_by(schema.partners.c.name))
            return [KINDS[Partner].from_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in schema.RECORD_TABLES.items()
            }

    def partner_ids(self, connection: Connection) -> set[str]:
        """Every stored partner's id, read on `connection` (inside a sync's transaction)."""
        return set(connection.execute(select(schema.partners.c.id)).scalars())

    def deal_counts_by_partner(self) -> dict[str, int]:
        deals = schema.deals
        query = select(deals.c.partner_id, func.count()).group_by(deals.c.partner_id)
        with self.engine.connect() as connection:
            return {pid: int(n) for pid, n in connection.execute(query) if pid is not None}


#: The tables a batch of `NewRows` goes into.
NEW_ROWS_TABLES = ("deals", "stage_changes")


def _is_empty(connection: Connection, table: Table) -> bool:
    return connection.execute(select(table.c.id).limit(1)).first() is None


class _Stays:
    """Which deals' stays an `upsert_rows` call leaves unsettled. Each batch settles the stays
    of its own stage changes (`_first_stays`); into a table that was empty, a deal is settled
    unless its changes came in more than one batch, while into one that held rows, any deal
    written may have stored changes the batch did not see."""

    MOST = 100_000  # deals refreshed one by one at most; beyond, every deal at once

    def __init__(self, empty: bool) -> None:
        self.empty = empty
        self.seen = ReadKeys()  # the deals of earlier batches
        self.found: set[str] | None = set()

    def unsettled(self, written: set[str] | None) -> set[str] | None:
        """The unsettled deals so far, given the deals a batch wrote."""
        if self.found is None or written is None:
            self.found = None
            return None
        deals = list(written)
        if self.empty:
            spanning = self.seen.read_before(deals)
            self.seen.add(deals)
            deals = [deal for deal, earlier in zip(deals, spanning, strict=True) if earlier]
        self.found.update(deals)
        if len(self.found) > self.MOST:
            self.found = None
        return None if self.found is None else set(deals)


def _sqlite_hashes(connection: Connection, table: str, keys: list[str]) -> dict[str, str]:
    """`Store.stored_hashes` of a batch on SQLite (`_sqlite_values`)."""
    return _sqlite_values(connection, table, "row_hash", keys)


def _sqlite_values(
    connection: Connection, table: str, column: str, keys: list[str]
) -> dict[str, Any]:
    """The value of `column` (an SQL expression of the table's columns) of those of `keys` that
    are ids of `table`'s rows, on SQLite, through the driver. A file's batch of keys is mostly
    a run of the primary key's order (deals by id, a deal's stage changes, the deals of a run
    of stage changes), so the rows between its least and greatest key are read in one sweep
    of the index, a third of the cost of seeking each key; a batch whose range holds many more
    rows asks for each key."""
    driver: Any = connection.connection.driver_connection
    wanted = set(keys)
    if not wanted:
        return {}
    most = 2 * len(wanted) + 100
    ranged = f"SELECT id, {column} FROM {table} WHERE id BETWEEN ? AND ? LIMIT ?"  # noqa: S608
    rows = driver.execute(ranged, (min(wanted), max(wanted), most)).fetchall()
    if len(rows) < most:  # the whole range (SQLite's text order is the code points' order)
        return {key: value for key, value in rows if key in wanted}
    marks = ",".join("?" * len(wanted))
    each = f"SELECT id, {column} FROM {table} WHERE id IN ({marks})"  # noqa: S608
    return dict(driver.execute(each, list(wanted)).fetchall())


def _first_stays(changes: list[dict[str, Any]]) -> None:
    """Each stage change's `left_at` as far as its batch tells (`kpi.new_rows.next_moments`)."""
    lefts = next_moments(
        [row["deal_id"] for row in changes], [row["entered_at"] for row in changes]
    )
    for row, left in zip(changes, lefts, strict=True):
        row["left_at"] = left


def _stays_update(deal_ids: list[str] | None) -> Update:
    """The UPDATE behind `Store.refresh_stays`: each distinct (deal, moment) with the next
    moment of its deal, one window over the deals' histories."""
    changes = schema.stage_changes
    moments = select(changes.c.deal_id, changes.c.entered_at).distinct()
    if deal_ids is not None:
        moments = moments.where(changes.c.deal_id.in_(deal_ids))
    distinct = moments.subquery("moments")
    following = func.lead(distinct.c.entered_at).over(
        partition_by=distinct.c.deal_id, order_by=distinct.c.entered_at
    )
    nexts = select(distinct.c.deal_id, distinct.c.entered_at, following.label("next")).subquery(
        "nexts"
    )
    return (
        update(changes)
        .where(
            changes.c.deal_id == nexts.c.deal_id,
            changes.c.entered_at == nexts.c.entered_at,
            changes.c.left_at.is_distinct_from(nexts.c.next),
        )
        .values(left_at=nexts.c.next)
    )


def _add_partner_keys(connection: Connection, changes: list[dict[str, Any]]) -> None:
    """Sets each stage change's partner key from its deal, as the triggers of migration 0004
    would: one query per batch here saves SQLite a second write of every new row."""
    partner_of = _partner_keys(connection, {row["deal_id"] for row in changes})
    for row in changes:
        row["partner_key"] = partner_of.get(row["deal_id"])


def _partner_keys(connection: Connection, deal_ids: Iterable[str]) -> dict[str, str]:
    """The partner key of each of the deals that is stored ('' for a direct deal)."""
    if connection.dialect.name == "sqlite":
        return _sqlite_values(connection, "deals", "coalesce(partner_id, '')", list(deal_ids))
    deals = schema.deals
    query = select(deals.c.id, func.coalesce(deals.c.partner_id, "")).where(
        deals.c.id.in_(set(deal_ids))
    )
    return {deal_id: key for deal_id, key in connection.execute(query)}


def _execute_many(
    connection: Connection, statement: ConflictInsert, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`connection.execute(statement, rows)`, on SQLite without SQLAlchemy's per-row work: the
    statement compiled once, each column converted in one pass (`kpi.sqlite_binds`), and the
    tuples handed to the driver's executemany."""
    if connection.dialect.name != "sqlite":
        connection.execute(statement, list(rows))
        return
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(rows[0]))
    names = compiled.positiontup or []
    connection.exec_driver_sql(compiled.string, driver_rows(names, compiled._bind_processors, rows))


def open_store(
    url: str,
    migrate: bool = True,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    name: str = "partner-kpi",
) -> Store:
    """Connects to the database at `url` and brings its schema up to date.

    A writer waits at most `lock_timeout` seconds for another one (SQLite's busy timeout,
    PostgreSQL's lock_timeout); on PostgreSQL the session is called `name`, so a person (and
    the message of a writer that waited too long) can tell who holds a lock."""
    where = location(make_url(url))
    backend = make_url(url).get_backend_name()
    connect_args = {"application_name": name} if backend == "postgresql" else {}
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)
    except (ImportError, NoSuchModuleError) as error:
        raise StoreError(
            f"cannot use the database {where}: its driver is missing ({first_line(error)}); "
            f"use {supported_list()}."
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", partial(_sqlite_pragmas, lock_timeout))
        event.listen(engine, "handle_error", _finish_interrupted_statement)
    else:
        event.listen(engine, "connect", partial(_postgres_settings, lock_timeout))
    store = Store(engine, lock_timeout)
    if migrate:
        try:
            upgrade(engine)
        except DBAPIError as error:
            raise store.fault(error) from None
    return store


def _sqlite_pragmas(lock_timeout: float, dbapi_connection: Any, record: Any) -> None:
    busy_ms = round(lock_timeout * 1000)
    record.info[BUSY_TIMEOUT_KEY] = busy_ms
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the bot) never block the sync
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.close()


def _finish_interrupted_statement(context: ExceptionContext) -> None:
    """Ctrl-C (an exception that is no Exception) in the middle of a statement: SQLAlchemy then
    closes the connection but not the statement's cursor, and SQLite defers closing a
    connection whose statement is unfinished, keeping its write lock until the cursor is
    collected, so the sync's own record of the failed run waited out the busy timeout. Closing
    the cursor finishes the statement, and the connection closes (and rolls back) at once."""
    if isinstance(context.original_exception, Exception):
        return
    # (`context.cursor` is unset in SQLAlchemy 2.1: the execution context holds it.)
    cursor = getattr(context.execution_context, "cursor", None)
    if cursor is not None:
        with suppress(Exception):
            cursor.close()


def _postgres_settings(lock_timeout: float, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET lock_timeout = {round(lock_timeout * 1000)}")
    cursor.close()
    dbapi_connection.commit()  # a SET in a transaction that rolls back would be undone


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter); Python 3.11 has no itertools.batched."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _to_column(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return _utc_naive(value)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "value") and not isinstance(value, date):  # an enum
        return value.value
    return value


def _from_column(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return tuple(value)
    return value


#: Built once: `json.dumps` with these options builds a new encoder at every call.
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def _row_hash(row: dict[str, Any]) -> str:
    text = _HASH_ENCODER.encode(row)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

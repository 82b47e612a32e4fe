"""Incremental sync machinery shared by the CRM connectors (Salesforce now, HubSpot next).

A CRM object is synced as a stream of pages. Each page is written in one transaction together
with the object's watermark (the `Cursor` of the last record it covers), so an interruption at
any point leaves the store consistent and the next run resumes where the last committed page
ended. Streams re-read a look-back window before the watermark (records committed late at the
cursor's boundary are otherwise lost); re-reads are harmless because upserts are idempotent.

Also here: retries with exponential backoff and full jitter, and `ApiBudget`, which counts API
calls and stops a sync cleanly (`StopSync`) before it spends more than its share of the daily
allowance. Nothing in this module knows a CRM.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection

from connectors.guard import SWEEP_REFUSED, DeleteGuard
from connectors.normalize import Normalizer
from connectors.report import ObjectReport, SyncReport
from kpi.models import Record, StageChange
from kpi.read_keys import ReadKeys
from kpi.store import KINDS, Store, UpsertCounts

if TYPE_CHECKING:
    from connectors.secondary import SecondaryFiles

T = TypeVar("T")

#: Called as rows stream in: (object name, rows read so far for it).
Progress = Callable[[str, int], None]


class StopSync(Exception):
    """A clean stop: committed pages and their watermarks stay; the message says why."""


# --- cursors and watermarks -------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in a stream ordered by (last-modified time, id): ties are broken by id."""

    modified: datetime  # timezone-aware
    id: str = ""

    def encode(self) -> str:
        return json.dumps({"modified": self.modified.astimezone(UTC).isoformat(), "id": self.id})

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(datetime.fromisoformat(data["modified"]), str(data.get("id", "")))

    def rewound(self, lookback: timedelta) -> datetime:
        """Where the next read starts: the cursor's time minus the look-back window."""
        return self.modified - lookback


def read_watermark(store: Store, source: str, obj: str) -> Cursor | None:
    with store.transaction() as connection:
        return Cursor.decode(store.watermark(connection, source, obj))


def advance_watermark(
    store: Store, connection: Connection, source: str, obj: str, cursor: Cursor
) -> None:
    """Moves the watermark forward to `cursor` (never back), in the caller's transaction."""
    stored = Cursor.decode(store.watermark(connection, source, obj))
    if stored is None or cursor > stored:
        store.set_watermark(connection, source, obj, cursor.encode())


# --- pages ------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of a stream, ready to commit: records to upsert, ids to delete, and the cursor
    of the last source record it covers (None: the page moves no watermark). `values` are
    records of the stream's model already in their stored columns (`RecordKind.values`, made
    without the model by a bulk reader), written with `Store.upsert_rows`."""

    records: list[Record] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    cursor: Cursor | None = None
    rows_read: int = 0  # source rows behind the page, for progress
    # More pages of the same watermark follow (a Bulk API result, whose watermark comes with
    # its last page): the writer may commit them together, in one transaction.
    more: bool = False


#: Work a stream does in a page's transaction after its rows are written (e.g. derived data),
#: or before (`Stream.before_write`: e.g. reading what is stored, the earlier pages included).
AfterWrite = Callable[[Connection, Page], None]


@dataclass
class Stream:
    """One CRM object synced into one kind of record.

    `pages(start)` reads the object from `start` (None: from the beginning) page by page.
    `model` is the kind the page's `deleted_ids` refer to. In a full sync, records of `model`
    from this source that no page delivered are deleted once the stream has run to its end.
    """

    name: str  # the CRM object, also the watermark's key
    model: type[Record]
    pages: Callable[[Cursor | None], Iterable[Page]]
    after_write: AfterWrite | None = None
    before_write: AfterWrite | None = None
    # The indexes of the stream's table its pages read through while they are written: they
    # are kept while a run of pages of one watermark loads into the empty table.
    reads_by: tuple[str, ...] = ()
    # A stream that only reports changes since its watermark (deletions, child edits that
    # touch a parent). With no watermark, or in a full sync, the main streams read everything
    # current, so it is not read: its watermark is set to the sync's start.
    changes_only: bool = False
    # A changes-only stream of the deletions the CRM reports (getDeleted, archived): a full
    # sync reads it too, from its watermark, so they apply even when the guard refuses the sweep.
    explicit_deletions: bool = False


@dataclass
class _PendingSweep:
    """A full sync's stream that ran to its end: the ids it saw, of how many stored before."""

    stream: Stream
    seen: ReadKeys
    stored_before: int


class StreamWriter:
    """Commits a stream's pages, each with its watermark, and keeps the report's figures.

    A full sync's sweeps wait until every stream has run (`sweep`), and then apply all or none:
    a permission change that hides deals hides their history too, and deleting the one without
    the other would change the KPIs of deals that stay."""

    def __init__(
        self,
        store: Store,
        source: str,
        report: SyncReport,
        progress: Progress | None,
        started_at: datetime,
        guard: DeleteGuard | None = None,
    ) -> None:
        self.guard = guard or DeleteGuard()
        self.store = store
        self.source = source
        self.report = report
        self.progress = progress
        self.started_at = started_at
        self.pending: list[_PendingSweep] = []

    def run(self, stream: Stream, full: bool, lookback: timedelta) -> None:
        """Syncs one stream. A full sync reads from the beginning and remembers what it saw for
        the sweep; a stream of explicit deletions it reads from its watermark."""
        reads_in_full = stream.changes_only and stream.explicit_deletions
        start = (
            None
            if full and not reads_in_full
            else read_watermark(self.store, self.source, stream.name)
        )
        if stream.changes_only and start is None:
            with self.store.transaction() as connection:
                advance_watermark(
                    self.store, connection, self.source, stream.name, Cursor(self.started_at)
                )
            return
        if start is not None and lookback:
            start = Cursor(start.rewound(lookback), "")
        object_report = self.report.object(stream.name)
        sweeps = full and not stream.changes_only
        seen = ReadKeys() if sweeps else None
        before = self._stored_count(stream.model) if sweeps else None
        key = KINDS[stream.model].key
        rows = 0
        pages = iter(stream.pages(start))
        for first in pages:
            written = _Written()
            with self._transaction(stream, first.more) as connection:
                page: Page | None = first
                while page is not None:
                    self.write(connection, stream, page, written)
                    if seen is not None:
                        keys = [key(r) for r in page.records if isinstance(r, stream.model)]
                        seen.add([*keys, *(values["id"] for values in page.values)])
                    rows += page.rows_read
                    if self.progress is not None:
                        self.progress(stream.name, rows)
                    page = next(pages, None) if page.more else None
            written.report(object_report)  # committed
        if seen is not None and before is not None:
            self.pending.append(_PendingSweep(stream, seen, before))

    def sweep(self) -> None:
        """Deletes what the full sync's streams never saw, in one transaction, unless the
        deletion guard refuses one of the sweeps: then none is applied (the guard names each)."""
        with self.store.transaction() as connection:
            found = [
                (
                    p.stream,
                    self.store.missing(
                        connection, p.stream.model, self.source, p.seen, p.stored_before
                    ),
                )
                for p in self.pending
            ]
            allowed = [self.guard.allows(sweep) for _, sweep in found]  # every one, to name all
            if all(allowed):
                for stream, sweep in found:
                    deleted = self.store.delete_swept(connection, stream.model, sweep)
                    self.report.object(stream.name).deleted += deleted
            if any(stream.model is StageChange for stream, _ in found):
                self.store.refresh_stays(connection)
        self.pending.clear()

    def _stored_count(self, model: type[Record]) -> int:
        """The stored rows a full sync's sweep is measured against (the guard's share)."""
        with self.store.transaction() as connection:
            return self.store.stored_count(connection, model, self.source)

    def write(self, connection: Connection, stream: Stream, page: Page, written: _Written) -> None:
        """Writes one page, and its watermark, in the caller's transaction."""
        if stream.before_write is not None:
            stream.before_write(connection, page)
        written.counts.add(self.store.upsert(connection, page.records, self.source))
        if page.values:
            written.counts.add(
                self.store.upsert_rows(connection, stream.model, page.values, self.source)
            )
        written.deleted += self.store.delete_records(
            connection, stream.model, self.source, page.deleted_ids
        )
        if stream.after_write is not None:
            stream.after_write(connection, page)
        if page.cursor is not None:
            advance_watermark(self.store, connection, self.source, stream.name, page.cursor)

    @contextmanager
    def _transaction(self, stream: Stream, loads: bool) -> Iterator[Connection]:
        """A page's transaction; for a run of pages of one watermark (`Page.more`), one
        transaction for them all, into an empty table with its indexes built at the end but
        for `Stream.reads_by` (an interrupted run rolls back whole; its watermark was never
        committed anyway)."""
        with self.store.transaction() as connection:
            if not loads:
                yield connection
                return
            with self.store.indexes_deferred(connection, stream.model, stream.reads_by):
                yield connection


@dataclass
class _Written:
    """What a transaction's pages wrote, for the report once it commits."""

    # unsettled=None: the deals a load's stage changes touched are not gathered (a million)
    counts: UpsertCounts = field(default_factory=lambda: UpsertCounts(unsettled=None))
    deleted: int = 0

    def report(self, object_report: ObjectReport) -> None:
        object_report.count(self.counts)
        object_report.deleted += self.deleted


# --- retries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base·2ⁿ))."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        return self.jitter() * min(self.max_delay, self.base_delay * 2.0**attempt)

    def run(
        self,
        call: Callable[[], T],
        retryable: Callable[[BaseException], bool],
        wait_hint: Callable[[BaseException], float | None] | None = None,
    ) -> T:
        """Calls `call` until it succeeds, a fault is not retryable, or attempts run out.

        `wait_hint` may name how long the server asked to wait after a fault (a 429's
        Retry-After); that wait replaces the backoff delay for that attempt."""
        for attempt in range(self.attempts):
            try:
                return call()
            except Exception as error:
                if attempt + 1 >= self.attempts or not retryable(error):
                    raise
                hint = wait_hint(error) if wait_hint is not None else None
            self.sleep(self.delay(attempt) if hint is None else max(hint, 0.0))
        raise AssertionError("unreachable")  # pragma: no cover


# --- API allowance ----------------------------------------------------------------------


@dataclass
class ApiBudget:
    """Counts a sync's API calls and stops it before it spends `max_share` of the daily
    allowance the CRM reports (on every response, e.g. Salesforce's Sforce-Limit-Info)."""

    max_share: float = 0.5
    calls: int = 0
    used: int | None = None  # the org's usage at the last response
    total: int | None = None
    used_at_start: int | None = None

    def record_call(self) -> None:
        self.calls += 1

    def observe(self, used: int, total: int) -> None:
        if self.used_at_start is None:
            self.used_at_start = max(used - 1, 0)  # that response's own call counts for us
        self.used, self.total = used, total

    @property
    def spent(self) -> int:
        """Calls of the allowance this sync has used, as the CRM counts them."""
        if self.used is None or self.used_at_start is None:
            return 0
        return self.used - self.used_at_start

    def check(self) -> None:
        """Raises StopSync when one more call would take the sync past its share."""
        if self.total is None:
            return
        if self.spent + 1 > self.max_share * self.total:
            raise StopSync(
                f"stopped before using more than {self.max_share:.0%} of the daily API "
                f"allowance ({self.spent} of {self.total} calls used by this sync, "
                f"{self.used} by the org today); the next sync resumes where this one stopped"
            )

    def as_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "org_used": self.used, "org_total": self.total}


def finish_crm_sync(
    store: Store,
    report: SyncReport,
    normalizer: Normalizer,
    guard: DeleteGuard,
    secondary: SecondaryFiles | None = None,
    progress: Progress | None = None,
) -> None:
    """What ends every CRM sync, finished or stopped early: the secondary folder's files
    (`connectors.secondary`), the warnings about references to records the store lacks and the
    normalizer's, then the deletion guard's refusal, if any, the folder's included (its sweeps
    held back; the pages read stay committed)."""
    if secondary is not None:
        secondary.load(store, report, guard, progress)
    with store.transaction() as connection:
        report.warnings.extend(store.unknown_reference_warnings(connection))
    report.warnings.extend(normalizer.warnings())
    guard.raise_if_refused(SWEEP_REFUSED)

"""The files source: a folder of CSV files in the format of kpi-spec.md section 1.

Files are streamed (never read whole) in `files.encoding`, a batch of rows at a time, their
columns checked in bulk (`BULK`) and a row those checks refuse read by its builder (`Row` and
the `_partner`, `_deal`, ... functions), which says why; each bad row is reported as
`deals.csv:14: ...` and skipped, and the rest loads; a skipped row keeps its id's stored copy.
A sync of this source is a snapshot, in one transaction: rows that disappeared from the files
are deleted from the store, except survey answers, which the store never drops, and except when
an unreadable row's id cannot be told (that table keeps its rows) or the deletion guard refuses
(then nothing changes). A file that cannot be read at all (missing, missing a required column,
not text in the encoding) stops the sync before anything changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import Connection

from connectors import reader_process
from connectors.bulk_read import BULK, SETTINGS_READ, Values
from connectors.csv_columns import Columns, naive_utc
from connectors.csv_text import csv_rows, records
from connectors.errors import SourceError
from connectors.file_digests import FileDigest, added
from connectors.fingerprints import Fingerprints
from connectors.guard import DeleteGuard
from connectors.normalize import Normalizer, validation_reason
from connectors.report import SyncReport
from kpi.models import (
    Channel,
    Customer,
    Deal,
    DealStatus,
    DealType,
    Goal,
    Partner,
    Record,
    StageChange,
    SupportTicket,
    SurveyResponse,
    TrainingCompletion,
)
from kpi.new_rows import NewRows
from kpi.page_cache import larger_page_cache
from kpi.read_keys import ReadKeys
from kpi.record_keys import natural_key
from kpi.store import KINDS, Store, Sweep, UpsertCounts, repeat_key
from settings.goals import GoalError, goal_fields, plain_number

SOURCE = "files"
READ_BATCH = 5000  # CSV records read (and progress reported) at a time
#: The size from which a file of deals or stage changes is read by a process of its own on a
#: first load (`connectors.reader_process`): below, starting the process costs more than it
#: saves.
PARALLEL_BYTES = 16 * 1024 * 1024
WRITE_BATCH = 5000  # rows compared with the store's and written at a time
Progress = Callable[[str, int], None]
E = TypeVar("E", bound=StrEnum)


class BadCell(ValueError):
    """One cell that cannot be read; its message names the field and says what is wrong."""


class Row:
    """One CSV record as a mapping of header name to cell, with typed accessors."""

    def __init__(self, cells: dict[str, str]) -> None:
        self.cells = cells

    def text(self, name: str) -> str | None:
        value = self.cells.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise BadCell(f"{name} is empty")
        return value

    def date(self, name: str) -> dt.date | None:
        value = self.text(name)
        return None if value is None else self._date(name, value)

    def required_date(self, name: str) -> dt.date:
        return self._date(name, self.required(name))

    @staticmethod
    def _date(name: str, value: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise BadCell(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None

    def timestamp(self, name: str) -> datetime:
        value = self.required(name)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadCell(f"{name} {value!r} is not an ISO 8601 timestamp") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def decimal(self, name: str) -> Decimal | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise BadCell(f"{name} {value!r} is not a number") from None
        if not number.is_finite():
            raise BadCell(f"{name} {value!r} is not a number")
        return number

    def integer(self, name: str, low: int, high: int, required: bool = False) -> int | None:
        value = self.required(name) if required else self.text(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise BadCell(f"{name} {value!r} is not a whole number from {low} to {high}")
        return number

    def boolean(self, name: str) -> bool:
        value = (self.text(name) or "false").lower()
        if value not in ("true", "false"):
            raise BadCell(f"{name} {value!r} is not true or false")
        return value == "true"

    def choice(self, name: str, enum: type[E]) -> E | None:
        value = self.text(name)
        return None if value is None else self._choice(name, value, enum)

    def required_choice(self, name: str, enum: type[E]) -> E:
        return self._choice(name, self.required(name), enum)

    @staticmethod
    def _choice(name: str, value: str, enum: type[E]) -> E:
        try:
            return enum(value.lower())
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise BadCell(f"{name} {value!r} is not one of {allowed}") from None


@dataclass(frozen=True)
class CsvFile:
    """One file of the format: its name, its required columns, and how a row becomes a record."""

    name: str
    model: type[Record]
    required_columns: tuple[str, ...]
    build: Callable[[Row, Normalizer], Record]
    optional: bool = False  # an absent optional file leaves the store's rows of that kind alone
    keyed_by_id: bool = False  # its `id` column is the stored row's id
    # A later row with the same key replaces an earlier one (goals) instead of being refused.
    later_wins: bool = False
    # Deletions pass the deletion guard (goals are the user's own intent, not CRM data).
    guarded: bool = True
    # identical rows are separate records (training completions have no id): each repeat is
    # numbered by its `occurrence` instead of being skipped as a repeated id
    repeats_count: bool = False


def _partner(row: Row, _: Normalizer) -> Partner:
    emails = tuple(e.strip() for e in (row.text("contact_emails") or "").split(";") if e.strip())
    return Partner(
        id=row.required("id"),
        name=row.required("name"),
        tier=row.text("tier"),
        joined_on=row.required_date("joined_on"),
        left_on=row.date("left_on"),
        owner_email=row.text("owner_email"),
        contact_emails=emails,
        region=row.text("region"),
    )


def _deal(row: Row, normalize: Normalizer) -> Deal:
    status = row.required_choice("status", DealStatus)
    open_deal = status is DealStatus.OPEN
    closed_on = row.date("closed_on") if open_deal else row.required_date("closed_on")
    original_amount = row.decimal("amount")
    currency = row.text("currency")
    lead_source = row.text("lead_source")
    csat = row.integer("csat", 1, 5)
    deal = Deal(
        id=row.required("id"),
        partner_id=row.text("partner_id"),
        name=row.text("name") or "",
        original_amount=original_amount,
        currency=currency.upper() if currency else None,
        stage=row.text("stage"),
        status=status,
        created_on=row.required_date("created_on"),
        closed_on=closed_on,
        expected_close_on=row.date("expected_close_on"),
        type=row.choice("type", DealType),
        lead_source=lead_source,
        channel=normalize.channel(lead_source, row.choice("channel", Channel)),
        registered=row.boolean("registered"),
        registered_on=row.date("registered_on"),
        csat=csat,
    )
    # Converted last, so a row that cannot be read never counts as an unconverted amount.
    return deal.model_copy(update={"amount": normalize.amount(original_amount, currency)})


def _stage_change(row: Row, _: Normalizer) -> StageChange:
    return StageChange(
        deal_id=row.required("deal_id"),
        stage=row.required("stage"),
        entered_at=row.timestamp("entered_at"),
    )


def _training(row: Row, _: Normalizer) -> TrainingCompletion:
    return TrainingCompletion(
        partner_id=row.required("partner_id"),
        course=row.required("course"),
        completed_on=row.required_date("completed_on"),
    )


def _customer(row: Row, normalize: Normalizer) -> Customer:
    original_mrr = row.decimal("mrr")
    currency = row.text("currency")
    customer = Customer(
        id=row.required("id"),
        partner_id=row.text("partner_id"),
        name=row.text("name") or "",
        became_customer_on=row.required_date("became_customer_on"),
        churned_on=row.date("churned_on"),
        original_mrr=original_mrr,
        currency=currency.upper() if currency else None,
        onboarded_on=row.date("onboarded_on"),
        referred_by=row.text("referred_by"),
    )
    # Converted last, like a deal's amount: an unreadable row never counts as unconverted.
    return customer.model_copy(update={"mrr": normalize.amount(original_mrr, currency)})


def _ticket(row: Row, _: Normalizer) -> SupportTicket:
    return SupportTicket(
        id=row.required("id"),
        customer_id=row.required("customer_id"),
        opened_at=row.timestamp("opened_at"),
    )


def _survey_response(row: Row, _: Normalizer) -> SurveyResponse:
    partner_id = row.required("partner_id")
    score = row.integer("score", 0, 10, required=True)
    submitted_at = row.timestamp("submitted_at")
    respondent = row.text("respondent")
    campaign_id = row.text("campaign_id")
    # The format has no id column; an optional one is honoured, else the answer's own
    # content is its identity, so loading the same file twice adds nothing.
    key = "|".join([partner_id, respondent or "", campaign_id or "", submitted_at.isoformat()])
    default_id = "csv-" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
    return SurveyResponse(
        id=row.text("id") or default_id,
        partner_id=partner_id,
        respondent=respondent,
        campaign_id=campaign_id,
        score=score if score is not None else 0,
        comment=row.text("comment"),
        submitted_at=submitted_at,
    )


def _goal(row: Row, _: Normalizer) -> Goal:
    """A goals.csv row by the rules of section 9 (the partner is checked against the store's
    partners by `FilesSource`, which knows them)."""
    partner_id = row.text("partner_id")
    try:
        target = plain_number(row.required("target"))
        fields = goal_fields(
            row.required("kpi"),
            row.required("period"),
            target,
            row.text("direction"),
            for_program=partner_id is None,
        )
    except GoalError as error:
        raise BadCell(str(error)) from None
    return Goal(
        partner_id=partner_id,
        kpi=fields.kpi,
        period=fields.period.name,
        start_on=fields.period.start,
        end_on=fields.period.end,
        target=fields.target,
        direction=fields.direction,
    )


# --- the unchanged records of a re-sync: a key and a fingerprint each ------------------------
# A record whose fingerprint (`connectors.fingerprints`) equals the stored hash of its key was
# stored from these very cells under these settings, so it is neither checked nor built again:
# it counts as unchanged and its key as read. Each function gives a file's key reader: the key
# its builder would give the record, or None where that takes more than a look at the cells
# (then the record is read in full, which is always right). Deals and customers in a currency
# without a rate are read in full too, so the report counts their unconvertible amounts.

KeyOf = Callable[[list[str]], str | None]
CANONICAL_MOMENT = len("2026-01-05T10:00:00")  # a naive timestamp to the second


def _id_key(index: dict[str, int], normalize: Normalizer) -> KeyOf:
    at, money = index["id"], index.get("currency")

    def key(cells: list[str]) -> str | None:
        if money is not None and not normalize.known_currency(cells[money].strip().upper()):
            return None
        return cells[at].strip() or None

    return key


def _stage_change_key(index: dict[str, int], _: Normalizer) -> KeyOf:
    deal, stage, moment = index["deal_id"], index["stage"], index["entered_at"]

    def key(cells: list[str]) -> str | None:
        deal_id, name, text = cells[deal].strip(), cells[stage].strip(), cells[moment].strip()
        if not deal_id or not name:
            return None
        if len(text) == CANONICAL_MOMENT and text[10] == "T":
            # Already as the key writes a UTC moment: were it no moment at all, no row stored
            # from these cells would hold the key, and the record would be read in full.
            return natural_key(deal_id, name, text)
        entered = naive_utc(text)
        return None if entered is None else natural_key(deal_id, name, entered.isoformat())

    return key


#: The files whose unchanged records a re-sync skips, by name (trainings are numbered among
#: identical rows, survey answers may be keyed by their content, goals checked against the
#: partners: all read in full).
FAST_KEYS: dict[str, Callable[[dict[str, int], Normalizer], KeyOf]] = {
    "partners.csv": _id_key,
    "deals.csv": _id_key,
    "stage_changes.csv": _stage_change_key,
    "customers.csv": _id_key,
    "tickets.csv": _id_key,
}
GOALS_FILE = "goals.csv"

FILES = (
    CsvFile("partners.csv", Partner, ("id", "name", "joined_on"), _partner, keyed_by_id=True),
    CsvFile("deals.csv", Deal, ("id", "status", "created_on"), _deal, keyed_by_id=True),
    CsvFile("stage_changes.csv", StageChange, ("deal_id", "stage", "entered_at"), _stage_change),
    CsvFile(
        "trainings.csv",
        TrainingCompletion,
        ("partner_id", "course", "completed_on"),
        _training,
        optional=True,
        repeats_count=True,
    ),
    CsvFile(
        "survey_responses.csv",
        SurveyResponse,
        ("partner_id", "score", "submitted_at"),
        _survey_response,
        optional=True,
    ),
    CsvFile(
        "customers.csv",
        Customer,
        ("id", "became_customer_on"),
        _customer,
        optional=True,
        keyed_by_id=True,
    ),
    CsvFile(
        "tickets.csv",
        SupportTicket,
        ("id", "customer_id", "opened_at"),
        _ticket,
        optional=True,
        keyed_by_id=True,
    ),
    CsvFile(
        GOALS_FILE,
        Goal,
        ("partner_id", "kpi", "period", "target"),  # a missing direction column: all empty
        _goal,
        optional=True,
        later_wins=True,
        guarded=False,
    ),
)


@dataclass
class _FileRead:
    """What one file's read established: the ids loaded, the ids of rows that could not be
    read (their stored copy stays), how many unreadable rows had no id to keep, and how many
    records were found stored unchanged without being read in full."""

    loaded: ReadKeys = field(default_factory=ReadKeys)
    kept: set[str] = field(default_factory=set)
    unidentified: int = 0
    unchanged: int = 0  # records stored unchanged, not read in full (`_Same`)

    def __contains__(self, key: object) -> bool:
        return key in self.kept or key in self.loaded

    def absent(self, keys: list[str]) -> list[str]:
        return [key for key in self.loaded.absent(keys) if key not in self.kept]


#: A CSV record of a batch that is stored as it is (its fingerprint is the stored hash), as its
#: key: a plain string, made at no cost for each of the millions of an unchanged re-sync.
_Same = str


def _key(line: Values | _Same) -> str:
    return line if isinstance(line, str) else str(line["id"])


#: The stored row hashes of those of the keys that are stored.
Lookup = Callable[[list[str]], dict[str, str]]


@dataclass(frozen=True)
class _ReadAs:
    """What reads a file's records besides its builders: the fingerprints, which are the
    rows' hashes (None: the store hashes the values), and the key reader and lookup that tell
    the records stored unchanged (None: every record is read in full)."""

    prints: Fingerprints | None
    key_of: KeyOf | None
    stored: Lookup | None

    def unchanged(self, shaped: list[list[str]], prints: list[str]) -> dict[int, str]:
        """The records of `shaped` stored unchanged: their places and keys."""
        if self.key_of is None or self.stored is None or not shaped:
            return {}
        keys: dict[int, str] = {}
        for at, cells in enumerate(shaped):
            key = self.key_of(cells)
            if key is not None:
                keys[at] = key
        hashes = self.stored(list(set(keys.values())))
        return {at: key for at, key in keys.items() if hashes.get(key) == prints[at]}


@dataclass
class _Line:
    """A CSV record of a batch that its first pass could not read, and why."""

    problem: str
    reason: str
    kept_id: str | None = None  # its id, whose stored copy stays
    unidentified: bool = False  # its id cannot be told


class FilesSource:
    """Reads a folder of CSV files into the store as one snapshot, in one transaction."""

    name = SOURCE

    def __init__(
        self,
        folder: Path,
        normalizer: Normalizer,
        encoding: str = "utf-8",
        max_delete_share: float = 0.2,
        only: tuple[str, ...] | None = None,
        bulk: bool = True,
        full_read: bool = False,
        parallel: bool = True,
    ) -> None:
        self.folder = folder
        self.normalizer = normalizer
        self.encoding = encoding
        self.max_delete_share = max_delete_share
        # The file names to read, each optional (a CRM's secondary folder); None: all of FILES.
        self.only = only
        # Read columns in bulk where a file can be (`BULK`); False: every row by its builder.
        self.bulk = bulk
        # Read every file, even one whose digest says it is stored as it is
        # (`connectors.file_digests`; the row-by-row reference never skips a file either).
        # A full sync (`partner-kpi sync --full`) reads every file too.
        self.full_read = full_read or not bulk
        # Read a large file of deals or stage changes on a first load by a second process.
        self.parallel = parallel

    def check(self) -> list[CsvFile]:
        """The files to read; raises SourceError when the folder or a file is unusable."""
        if not self.folder.is_dir():
            raise SourceError(
                f"{self.folder}: no such folder; set files.path in app.yaml "
                "or run `partner-kpi demo` to create the demo data."
            )
        present = []
        for spec in FILES:
            if self.only is not None and spec.name not in self.only:
                continue
            path = self.folder / spec.name
            if not path.exists():
                if spec.optional or self.only is not None:
                    continue
                raise SourceError(f"{path}: missing; the files source needs {spec.name}.")
            with csv_rows(path, self.encoding) as rows:
                header = next(rows, [])
            missing = [c for c in spec.required_columns if c not in {h.strip() for h in header}]
            if missing:
                raise SourceError(f"{path}: the header lacks the column(s) {', '.join(missing)}.")
            present.append(spec)
        return present

    def sync(
        self,
        store: Store,
        report: SyncReport,
        progress: Callable[[str, int], None] | None = None,
        accept_deletes: bool = False,
    ) -> None:
        self.load(store, report, DeleteGuard(self.max_delete_share, accept_deletes), progress)
        with store.transaction() as connection:
            report.warnings.extend(store.unknown_reference_warnings(connection))
        report.warnings.extend(self.normalizer.warnings())

    def load(
        self, store: Store, report: SyncReport, guard: DeleteGuard, progress: Progress | None
    ) -> None:
        """The snapshot itself, without the warnings about the whole store (a CRM's sync that
        reads a secondary folder gives those once, at its end)."""
        files = self.check()
        unsettled: set[str] | None = set()  # deals whose stays need refreshing (None: all)
        with store.bulk_transaction() as connection, larger_page_cache(connection):
            for spec in files:
                touched = self._load_file(store, connection, spec, report, guard, progress)
                if spec.model is StageChange:
                    unsettled = touched
            # Raised inside the transaction, so a refused sync changes nothing at all.
            guard.raise_if_refused("it changed nothing")
            if unsettled is None or unsettled:
                store.refresh_stays(connection, None if unsettled is None else sorted(unsettled))

    def _load_file(
        self,
        store: Store,
        connection: Connection,
        spec: CsvFile,
        report: SyncReport,
        guard: DeleteGuard,
        progress: Progress | None,
    ) -> set[str] | None:
        """One file into the sync's transaction: skipped when its digest says it is stored as
        it is, else read, written and swept. The deals whose stays its writes did not settle
        (None: any; for a file of stage changes)."""
        kind = spec.name.removesuffix(".csv")
        before = store.stored_count(connection, spec.model, SOURCE)
        digest = self._digest(store, connection, spec)
        same = None if self.full_read or report.full else digest.unchanged(before)
        if same is not None:  # stored as it is: what a read would report
            report.object(kind).count(UpsertCounts(unchanged=same.ids))
            self.normalizer.count(same.noted)
            if progress is not None:
                progress(spec.name, same.ids)
            return set()
        read = _FileRead()
        problems, noted = len(report.problems), self.normalizer.counted()
        check = _known_partner(store, connection) if spec.model is Goal else None
        stored = partial(store.stored_hashes, connection, spec.model) if before else None
        with store.indexes_deferred(connection, spec.model):
            if self._reads_aside(store, connection, spec, before):
                blocks = self._read_aside(spec, report, read, progress)
                counts = store.upsert_batches(connection, spec.model, blocks, SOURCE)
            else:
                rows = self._records(spec, report, read, progress, check, stored)
                counts = store.upsert_rows(connection, spec.model, rows, SOURCE, WRITE_BATCH)
        counts.unchanged += read.unchanged
        report.object(kind).count(counts)
        sweep = _sweep(store, connection, spec, read, before)
        if spec.guarded and not guard.allows(sweep):
            return counts.unsettled  # the sync raises at its end: nothing is kept, no digest
        if read.unidentified and sweep.gone:
            report.warnings.append(
                f"{spec.name}: {read.unidentified} unreadable row(s) have no id, so "
                f"none of the {len(sweep.gone):,} stored {kind.replace('_', ' ')} "
                "missing from the file were deleted in this sync"
            )
            sweep = Sweep(sweep.table, [], sweep.stored)
        report.object(kind).deleted = store.delete_swept(connection, spec.model, sweep)
        clean = not (read.kept or read.unidentified) and len(report.problems) == problems
        changed = bool(counts.new or counts.updated or sweep.gone)
        after = store.stored_count(connection, spec.model, SOURCE)
        digest.finish(
            clean, changed, len(read.loaded), after, added(noted, self.normalizer.counted())
        )
        return None if sweep.gone else counts.unsettled  # the deals of the ids gone: any

    def _digest(self, store: Store, connection: Connection, spec: CsvFile) -> FileDigest:
        """The file's digest (`connectors.file_digests`): of its bytes, the settings its
        builder reads and the encoding. Goals are never skipped: they depend on the partners."""
        settings = SETTINGS_READ.get(spec.name)
        return FileDigest(
            store,
            connection,
            SOURCE,
            self.folder / spec.name,
            settings(self.normalizer) if settings else "",
            self.encoding,
            skippable=spec.model is not Goal,
        )

    def _records(
        self,
        spec: CsvFile,
        report: SyncReport,
        read: _FileRead,
        progress: Callable[[str, int], None] | None,
        check: Callable[[Record], None] | None = None,
        stored: Lookup | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The file's readable records in their stored columns (`RecordKind.values`) and row
        hashes, but for those stored unchanged (counted in `read`); with `spec.later_wins`,
        one per key, the last."""
        if not spec.later_wins:
            yield from self._rows(spec, report, read, progress, check, stored)
            return
        latest: dict[str, dict[str, Any]] = {}
        for values in self._rows(spec, report, read, progress, check, stored):
            latest[values["id"]] = values
        yield from latest.values()

    def _rows(
        self,
        spec: CsvFile,
        report: SyncReport,
        read: _FileRead,
        progress: Callable[[str, int], None] | None,
        check: Callable[[Record], None] | None,
        stored: Lookup | None = None,
    ) -> Iterator[dict[str, Any]]:
        repeats: Counter[str] = Counter()  # rows seen per key, where identical rows count
        count = 0
        with csv_rows(self.folder / spec.name, self.encoding) as reader:
            header = [name.strip() for name in next(reader, [])]
            read_as = self._reading(spec, header, stored)
            for batch in reader.numbered(READ_BATCH):
                lines = self._first_pass(spec, header, batch, repeats, check, read_as)
                yield from _settle(spec, lines, read, report)
                count += len(batch)
                if progress is not None:
                    progress(spec.name, count)

    def _reads_aside(
        self, store: Store, connection: Connection, spec: CsvFile, before: int
    ) -> bool:
        """Whether the file is read by a process of its own (`connectors.reader_process`): a
        large file of deals or stage changes read in bulk into an empty SQLite table (deals
        while no stage change is stored, as on a first load, which reads deals first)."""
        return (
            self.parallel
            and spare_cpu()
            and self.bulk
            and spec.name in reader_process.FILES
            and before == 0
            and connection.dialect.name == "sqlite"
            and (self.folder / spec.name).stat().st_size >= PARALLEL_BYTES
            and store.holds_none(connection, spec.model)
            and (spec.model is StageChange or store.holds_none(connection, StageChange))
        )

    def _read_aside(
        self,
        spec: CsvFile,
        report: SyncReport,
        read: _FileRead,
        progress: Progress | None,
    ) -> Iterator[list[Values] | NewRows]:
        """The file's batches as its reading process sends them: the clean ones as columns,
        any other read here as every file is (`_first_pass`, `_settle`)."""
        repeats: Counter[str] = Counter()
        count = 0
        path = self.folder / spec.name
        with reader_process.reading(path, self.encoding, self.normalizer, READ_BATCH) as sent:
            read_as = self._reading(spec, sent.header, None)
            for batch in sent:
                if isinstance(batch, NewRows):
                    yield _settle_columns(spec, batch, read, report)
                    count += batch.read
                else:
                    lines = self._first_pass(spec, sent.header, batch, repeats, None, read_as)
                    yield _settle(spec, lines, read, report)
                    count += len(batch)
                if progress is not None:
                    progress(spec.name, count)
            self.normalizer.count(sent.counts)

    def _reading(self, spec: CsvFile, header: list[str], stored: Lookup | None) -> _ReadAs:
        """How the file's records are read: their fingerprints (none for goals, whose rows
        also depend on the stored partners) and, on the bulk path into a table that holds
        the source's rows, the key reader and stored hashes that tell unchanged ones."""
        if spec.model is Goal:
            return _ReadAs(None, None, None)
        settings = SETTINGS_READ.get(spec.name)
        prints = Fingerprints(spec.name, header, settings(self.normalizer) if settings else "")
        fast = FAST_KEYS.get(spec.name)
        if not self.bulk or fast is None or stored is None:
            return _ReadAs(prints, None, None)
        index = {name: at for at, name in enumerate(header)}
        return _ReadAs(prints, fast(index, self.normalizer), stored)

    def _first_pass(
        self,
        spec: CsvFile,
        header: list[str],
        batch: list[tuple[int, list[str]]],
        repeats: Counter[str],
        check: Callable[[Record], None] | None,
        read_as: _ReadAs,
    ) -> list[tuple[int, Values | _Line | _Same]]:
        """Each record of the batch read into its values, or why it cannot be, or that it is
        stored unchanged: the cells in bulk (`BULK`) where the file can be, and each row the
        bulk read refused by its builder, which says why (or reads it). A blank line is no
        record."""
        width = len(header)
        found = records(batch)
        shaped = [cells for _, cells in found if len(cells) == width]
        prints = [read_as.prints.of(cells) for cells in shaped] if read_as.prints else []
        same = read_as.unchanged(shaped, prints)
        bulk = BULK.get(spec.name) if self.bulk and check is None else None
        if bulk is not None:
            index = {name: at for at, name in enumerate(header)}
            rest = [cells for at, cells in enumerate(shaped) if at not in same]
            converted = iter(bulk(Columns(index, rest), self.normalizer))
        kind = KINDS[spec.model]
        lines: list[tuple[int, Values | _Line | _Same]] = []
        at = -1  # the record's place among the shaped ones
        for number, cells in found:
            if len(cells) != width:
                problem = f"has {len(cells)} cells, the header has {width}"
                lines.append((number, _Line(problem, "wrong number of cells", unidentified=True)))
                continue
            at += 1
            key = same.get(at)
            if key is not None:
                lines.append((number, key))
                continue
            values = next(converted) if bulk is not None else None
            if values is None:
                row = Row(dict(zip(header, cells, strict=True)))
                try:
                    record = spec.build(row, self.normalizer)
                    if check is not None:
                        check(record)
                except (BadCell, ValidationError) as error:
                    reason = str(error) if isinstance(error, BadCell) else validation_reason(error)
                    kept = row.text("id") if spec.keyed_by_id else None
                    lines.append((number, _Line(reason, reason, kept, unidentified=kept is None)))
                    continue
                values = kind.values(record)
            if spec.repeats_count:
                key = values["id"]
                repeats[key] += 1
                values["occurrence"] = repeats[key]
                values["id"] = repeat_key(key, repeats[key])
            if prints:
                values["row_hash"] = prints[at]
            lines.append((number, values))
        return lines


def _settle(
    spec: CsvFile,
    lines: list[tuple[int, Values | _Line | _Same]],
    read: _FileRead,
    report: SyncReport,
) -> list[Values]:
    """A batch's records to write, once each id is checked against the ids read before (a
    repeated one is a problem, unless the file's later rows win); its problems reported, and
    what the batch established noted in `read`."""
    keys = [_key(line) for _, line in lines if not isinstance(line, _Line)]
    read_earlier = read.loaded.read_before(keys)
    if len(keys) == len(lines) and len(set(keys)) == len(keys) and not any(read_earlier):
        # The usual batch: every record readable, none repeating an id.
        read.loaded.add(keys)
        read.unchanged += sum(isinstance(line, _Same) for _, line in lines)
        return [line for _, line in lines if isinstance(line, dict)]
    earlier = iter(read_earlier)
    added: set[str] = set()
    found: list[Values] = []
    for number, line in lines:
        if not isinstance(line, _Line):
            key = _key(line)
            if spec.later_wins or not (next(earlier) or key in added):
                added.add(key)
                if isinstance(line, _Same):
                    read.unchanged += 1
                else:
                    found.append(line)
                continue
            line = _repeated(key)
        elif line.unidentified:
            read.unidentified += 1
        elif line.kept_id not in added and line.kept_id not in read.loaded:
            read.kept.add(str(line.kept_id))
        _report(spec, report, number, line)
    read.loaded.add(list(added))
    return found


def spare_cpu() -> bool:
    """Whether this process may run on two CPUs: a reading process on a single one only adds
    the cost of sending what it read to the work."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        cpus = os.cpu_count() or 1
    return cpus >= 2


def _settle_columns(spec: CsvFile, batch: NewRows, read: _FileRead, report: SyncReport) -> NewRows:
    """`_settle` of a reading process's clean batch (its keys distinct): those of its records
    whose key an earlier batch read are problems, not written."""
    earlier = read.loaded.read_before(batch.ids)
    if any(earlier):
        repeated = {at for at, was in enumerate(earlier) if was}
        for at in sorted(repeated):
            _report(spec, report, batch.numbers[at], _repeated(batch.ids[at]))
        batch = batch.without(repeated)
    read.loaded.add(batch.ids)
    return batch


def _repeated(key: str) -> _Line:
    return _Line(f"repeats the id {key!r} of an earlier row", "repeated id")


def _report(spec: CsvFile, report: SyncReport, number: int, line: _Line) -> None:
    """A record of the file that is not written: its problem, and its reason counted."""
    report.problems.append(f"{spec.name}:{number}: {line.problem}")
    report.object(spec.name.removesuffix(".csv")).skip(_reason_category(line.reason))


def _sweep(
    store: Store, connection: Connection, spec: CsvFile, read: _FileRead, before: int
) -> Sweep:
    """The file's sweep. Every id a fingerprinted file loaded is stored as this source's (its
    row was written, or its stored hash is one only this source makes), so when the source
    stores as many rows as it loaded ids, none is gone, and the store's ids need not be read."""
    # (A goal's hash is of its values, which another source may store alike; survey answers
    # are never swept.)
    counted = spec.model is not Goal and spec.model is not SurveyResponse
    if counted and store.stored_count(connection, spec.model, SOURCE) == len(read.loaded):
        return Sweep(KINDS[spec.model].table.name, [], before)
    return store.missing(connection, spec.model, SOURCE, read, before)


def _known_partner(store: Store, connection: Connection) -> Callable[[Record], None]:
    """The check that a goal's partner is one of the partners (an id seen only on deals is
    unknown); read inside the sync's transaction, so partners.csv's rows count."""
    known = store.partner_ids(connection)

    def check(record: Record) -> None:
        partner_id = getattr(record, "partner_id", None)
        if partner_id is not None and partner_id not in known:
            raise BadCell(f"partner_id {partner_id!r} is not one of the partners")

    return check


def _reason_category(reason: str) -> str:
    """`amount 'x' is not a number` → `amount is not a number`, so reasons can be counted."""
    words = reason.split(" ")
    if len(words) > 2 and words[1].startswith("'"):
        quoted_end = next((i for i, w in enumerate(words[1:], 1) if w.endswith("'")), 1)
        return " ".join([words[0], *words[quoted_end + 1 :]])
    return reason

"""The files source: a folder of CSV files in the format of kpi-spec.md section 1.

Files are read row by row (never whole) in `files.encoding`, each bad row is reported as
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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from connectors.csv_text import csv_rows
from connectors.errors import SourceError
from connectors.guard import DeleteGuard
from connectors.normalize import Normalizer, validation_reason
from connectors.report import SyncReport
from kpi.models import (
    Channel,
    Customer,
    Deal,
    DealStatus,
    DealType,
    Partner,
    Record,
    StageChange,
    SupportTicket,
    SurveyResponse,
    TrainingCompletion,
)
from kpi.store import KINDS, Store

SOURCE = "files"
PROGRESS_EVERY = 5000  # rows between progress reports
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
)


@dataclass
class _FileRead:
    """What one file's read established: the ids loaded, the ids of rows that could not be
    read (their stored copy stays), and how many unreadable rows had no id to keep."""

    loaded: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)
    unidentified: int = 0

    def __contains__(self, key: object) -> bool:
        return key in self.loaded or key in self.kept


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
    ) -> None:
        self.folder = folder
        self.normalizer = normalizer
        self.encoding = encoding
        self.max_delete_share = max_delete_share
        # The file names to read, each optional (a CRM's secondary folder); None: all of FILES.
        self.only = only

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
        with store.transaction() as connection:
            for spec in files:
                kind = spec.name.removesuffix(".csv")
                read = _FileRead()
                before = store.stored_count(connection, spec.model, SOURCE)
                records = self._records(spec, report, read, KINDS[spec.model].key, progress)
                report.object(kind).count(store.upsert(connection, records, SOURCE))
                sweep = store.missing(connection, spec.model, SOURCE, read, before)
                if not guard.allows(sweep):
                    continue
                if read.unidentified and sweep.gone:
                    report.warnings.append(
                        f"{spec.name}: {read.unidentified} unreadable row(s) have no id, so "
                        f"none of the {len(sweep.gone):,} stored {kind.replace('_', ' ')} "
                        "missing from the file were deleted in this sync"
                    )
                    continue
                report.object(kind).deleted = store.delete_swept(connection, spec.model, sweep)
            # Raised inside the transaction, so a refused sync changes nothing at all.
            guard.raise_if_refused("it changed nothing")
            store.refresh_stays(connection)

    def _records(
        self,
        spec: CsvFile,
        report: SyncReport,
        read: _FileRead,
        key_of: Callable[[Record], str],
        progress: Callable[[str, int], None] | None,
    ) -> Iterator[Record]:
        kind_report = report.object(spec.name.removesuffix(".csv"))
        repeats: Counter[str] = Counter()  # rows seen per key, where identical rows count
        with csv_rows(self.folder / spec.name, self.encoding) as reader:
            header = [name.strip() for name in next(reader, [])]
            for count, cells in enumerate(reader, 1):
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(spec.name, count)
                where = f"{spec.name}:{reader.line_num}"
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line is not a record
                if len(cells) != len(header):
                    problem = f"has {len(cells)} cells, the header has {len(header)}"
                    reason = "wrong number of cells"
                    read.unidentified += 1
                else:
                    row = Row(dict(zip(header, cells, strict=True)))
                    try:
                        record = spec.build(row, self.normalizer)
                    except (BadCell, ValidationError) as error:
                        problem = reason = (
                            str(error) if isinstance(error, BadCell) else validation_reason(error)
                        )
                        _keep_stored_copy(spec, row, read)
                    else:
                        key = key_of(record)
                        if spec.repeats_count:
                            repeats[key] += 1
                            record = record.model_copy(update={"occurrence": repeats[key]})
                            key = key_of(record)
                        if key not in read.loaded:
                            read.loaded.add(key)
                            yield record
                            continue
                        problem, reason = f"repeats the id {key!r} of an earlier row", "repeated id"
                report.problems.append(f"{where}: {problem}")
                kind_report.skip(_reason_category(reason))


def _keep_stored_copy(spec: CsvFile, row: Row, read: _FileRead) -> None:
    """An unreadable row keeps its id's stored copy: by its id when the file has ids,
    otherwise (an empty id, or records keyed by their content) the table is not swept."""
    key = row.text("id") if spec.keyed_by_id else None
    if key is None:
        read.unidentified += 1
    elif key not in read.loaded:
        read.kept.add(key)


def _reason_category(reason: str) -> str:
    """`amount 'x' is not a number` → `amount is not a number`, so reasons can be counted."""
    words = reason.split(" ")
    if len(words) > 2 and words[1].startswith("'"):
        quoted_end = next((i for i, w in enumerate(words[1:], 1) if w.endswith("'")), 1)
        return " ".join([words[0], *words[quoted_end + 1 :]])
    return reason

"""Full syncs of large objects through Salesforce Bulk API 2.0 query jobs.

The REST query API pages 2,000 records a call; a Bulk API 2.0 query job (POST jobs/query)
runs the same SOQL on Salesforce's side and hands back CSV result sets of up to `MAX_RECORDS`
records a call, paged with the `Sforce-Locator` header. A full sync reads an object this way
when the org holds more than `salesforce.bulk_threshold` of its records (the record-count
resource, one call; `0` keeps every object on REST). Incremental syncs stay on REST: they read
few records, and a job's polling would cost more calls than it saves.

Bulk 2.0 takes no ORDER BY (it would turn off chunking), so the rows arrive in no order: the
pages carry no cursor, and the stream's watermark, the largest (SystemModstamp, Id) read, is
committed with a last empty page. It takes no child subqueries either: a query with them
(partner Accounts with their Contacts, Opportunities with `partner_role`) stays on REST, by
design and without a warning. When the org refuses Bulk (the API or the permission missing:
403, 404, API_DISABLED_FOR_ORG, INSUFFICIENT_ACCESS...) or a job ends Failed or Aborted, the
object is read through REST from the start instead (upserts are idempotent, and the full
sync's sweep counts what either path delivered) and the reason is a warning in the report.

Every request goes through the REST client's session and `call`, so it is counted against the
same allowance (`ApiBudget`), retried, and logs in again on an expired session. Not
simple-salesforce's `sf.bulk2`: its query() sleeps five seconds with time.sleep before the first
poll, holds each result set whole in one string, and keeps the job's id to itself (no abort);
the CSV here is parsed as it streams in.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from itertools import islice
from queue import Empty, Queue
from typing import Any, TypeVar

import requests
import urllib3
from simple_salesforce.api import Salesforce
from simple_salesforce.util import call_salesforce

from connectors.errors import SourceError
from connectors.incremental import Cursor, Page
from connectors.report import SyncReport
from connectors.salesforce.client import SalesforceApi, SalesforceRequestError
from connectors.salesforce.mapping import parse_datetime
from connectors.salesforce.soql import Query
from connectors.salesforce.streams import MODSTAMP, BuildPage

MAX_RECORDS = 50_000  # records asked for per result set (maxRecords)
ROWS_PER_PAGE = 10_000  # rows per committed page (one transaction)
READ_AHEAD = 2  # pages of rows downloaded and parsed while the store writes the last one
FIRST_POLL_SECONDS = 0.5
LONGEST_POLL_SECONDS = 10.0
JOB_TIMEOUT_SECONDS = 3600.0
DONE = {"JobComplete", "Failed", "Aborted"}

T = TypeVar("T")

#: The type of a field at a path of an object (its describe's `type`), None if unknown.
FieldType = Callable[[str, str], str | None]


class BulkUnavailable(SourceError):
    """Bulk API 2.0 cannot read this object now; the message says why, for the report."""


# --- the wire ---------------------------------------------------------------------------


class BulkQueryApi:
    """The query-job resources of Bulk API 2.0 over the REST client's session and calls."""

    def __init__(self, api: SalesforceApi) -> None:
        self.api = api

    def _request(self, method: str, resource: str, **kwargs: Any) -> requests.Response:
        extra = kwargs.pop("headers", {})

        def send(sf: Salesforce) -> requests.Response:
            headers = {**sf.headers, "Accept": "application/json", **extra}
            url = f"{sf.bulk2_url}query{resource}"
            return call_salesforce(url, method, sf.session, headers, **kwargs)

        return self.api.call(send)

    def create(self, soql: str, include_deleted: bool) -> dict[str, Any]:
        """Creates a query job (`queryAll` also reads deleted and archived records)."""
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        return dict(self._request("POST", "", data=json.dumps(body)).json())

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/{job_id}").json())

    def abort(self, job_id: str) -> None:
        self._request("PATCH", f"/{job_id}", data=json.dumps({"state": "Aborted"}))

    def results(self, job_id: str, locator: str | None) -> requests.Response:
        """One result set, its body left unread (streamed): CSV with a header row."""
        params = {"maxRecords": str(MAX_RECORDS)}
        if locator:
            params["locator"] = locator
        return self._request(
            "GET", f"/{job_id}/results", params=params, stream=True, headers={"Accept": "text/csv"}
        )


# --- CSV rows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    path: tuple[str, ...]
    convert: Callable[[str], Any]


def _boolean(text: str) -> bool:
    return text == "true"


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "boolean": _boolean,
    "int": int,
    "double": float,
    "currency": float,
    "percent": float,
}


class CsvRows:
    """Salesforce's CSV rows as the REST API's records: the empty string is null, booleans,
    numbers typed from the describe, `Account.Name` columns nested as {"Account": {"Name"}}."""

    def __init__(self, sobject: str, header: list[str], types: FieldType) -> None:
        self.columns = [
            _Column(tuple(name.split(".")), _CONVERTERS.get(types(sobject, name) or "", str))
            for name in header
        ]

    def row(self, values: list[str]) -> dict[str, Any]:
        if len(values) != len(self.columns):
            raise csv.Error(f"a row of {len(values)} values under {len(self.columns)} columns")
        row: dict[str, Any] = {}
        for column, text in zip(self.columns, values, strict=True):
            value = None if text == "" else column.convert(text)
            if len(column.path) == 1:
                row[column.path[0]] = value
                continue
            target = row
            for hop in column.path[:-1]:
                target = target.setdefault(hop, {})
            target[column.path[-1]] = value
        return row


# --- reading an object ------------------------------------------------------------------


class BulkReader:
    """Chooses Bulk API 2.0 or REST for each object of a full sync and reads it."""

    def __init__(
        self,
        api: SalesforceApi,
        threshold: int,
        report: SyncReport,
        types: FieldType,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.wire = BulkQueryApi(api)
        self.threshold = threshold
        self.report = report
        self.types = types
        self.sleep = sleep
        self.clock = clock
        self.counts: dict[str, int] = {}
        self.refusal: str | None = None  # the org's refusal of Bulk; not asked again this run
        self.objects: dict[str, int] = {}  # objects read through Bulk: records delivered

    def record_count(self, sobject: str) -> int:
        """The org's record count of `sobject` (Salesforce's periodically refreshed figure)."""
        if sobject not in self.counts:
            answer = self.api.call(
                lambda sf: sf.restful("limits/recordCount", params={"sObjects": sobject})
            )
            listed = dict(answer or {}).get("sObjects", [])
            found = {str(o.get("name")): int(o.get("count", 0)) for o in listed}
            self.counts[sobject] = found.get(sobject, 0)
        return self.counts[sobject]

    def wanted(self, query: Query) -> bool:
        """Whether the object is large enough for Bulk (asks the count only when it matters)."""
        return self.threshold > 0 and self.record_count(query.sobject) > self.threshold

    def pages(
        self,
        query: Query,
        build: BuildPage,
        include_deleted: bool,
        rest: Callable[[], Iterator[Page]],
    ) -> Iterator[Page]:
        """The whole object as pages: through a Bulk job when it is large and Bulk answers,
        else (with the reason reported) through `rest`."""
        reason = None
        try:
            if not query.children and self.wanted(query):
                yield from self._bulk_pages(query, build, include_deleted)
                return
        except BulkUnavailable as error:
            reason = str(error)
        except SalesforceRequestError as error:
            reason = self.refusal = str(error)
        if reason is not None:
            self.objects.pop(query.sobject, None)
            self.report.warnings.append(
                f"{query.sobject}: read through the REST API instead of Bulk API 2.0 "
                f"({reason.rstrip('.')})"
            )
        yield from rest()

    def _bulk_pages(self, query: Query, build: BuildPage, include_deleted: bool) -> Iterator[Page]:
        if self.refusal is not None:
            raise BulkUnavailable(self.refusal)
        soql = Query(query.sobject, ["Id", MODSTAMP, *query.fields], query.where).text()
        job_id = self._finished_job(soql, include_deleted)
        last: Cursor | None = None
        delivered = 0
        for rows in read_ahead(self._row_chunks(query.sobject, job_id), READ_AHEAD):
            for row in rows:
                modified = parse_datetime(row.get(MODSTAMP))
                if modified is not None:
                    cursor = Cursor(modified, str(row["Id"]))
                    last = cursor if last is None or cursor > last else last
            delivered += len(rows)
            self.objects[query.sobject] = delivered
            page = build(rows)
            page.more = True  # the watermark comes with the last page
            yield page
        yield Page(cursor=last)

    def _finished_job(self, soql: str, include_deleted: bool) -> str:
        """Creates the job and polls it, backing off, until it is JobComplete."""
        job = self.wire.create(soql, include_deleted)
        job_id = str(job["id"])
        deadline = self.clock() + JOB_TIMEOUT_SECONDS
        wait = FIRST_POLL_SECONDS
        while job.get("state") not in DONE:
            if self.clock() > deadline:
                self.wire.abort(job_id)
                raise BulkUnavailable(
                    f"query job {job_id} did not finish within {JOB_TIMEOUT_SECONDS / 60:g} minutes"
                )
            self.sleep(wait)
            wait = min(wait * 2, LONGEST_POLL_SECONDS)
            job = self.wire.job(job_id)
        if job["state"] != "JobComplete":
            detail = str(job.get("errorMessage") or "").strip()
            raise BulkUnavailable(
                f"query job {job_id} ended {job['state']}{': ' + detail if detail else ''}"
            )
        return job_id

    def _row_chunks(self, sobject: str, job_id: str) -> Generator[list[dict[str, Any]], None, None]:
        """The job's rows, ROWS_PER_PAGE at a time."""
        rows = self._rows(sobject, job_id)
        while chunk := list(islice(rows, ROWS_PER_PAGE)):
            yield chunk

    def _rows(self, sobject: str, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's rows, result set after result set, following `Sforce-Locator`."""
        locator: str | None = None
        while True:
            locator = yield from self._result_set(sobject, job_id, locator)
            if locator is None:
                return

    def _result_set(
        self, sobject: str, job_id: str, locator: str | None
    ) -> Generator[dict[str, Any], None, str | None]:
        """One result set's rows; returns the next set's locator (None after the last). A
        transfer that breaks, or ends short of `Sforce-NumberOfRecords`, is read again from
        its locator, past the rows already given."""
        given = 0
        for attempt in range(self.api.retry.attempts):
            response = self.wire.results(job_id, locator)
            following = response.headers.get("Sforce-Locator") or "null"
            expected = int(response.headers.get("Sforce-NumberOfRecords", "-1"))
            read, complete = 0, False
            try:
                for row in _csv_rows(sobject, response, self.types):
                    read += 1
                    if read > given:
                        given = read
                        yield row
                complete = True
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, csv.Error):
                pass  # read again below
            finally:
                if complete:  # read to its end: the connection goes back to the pool
                    response.raw.release_conn()
                else:
                    response.close()
            if expected < 0 or read == expected:
                return None if following == "null" else following
            self.sleep(self.api.retry.delay(attempt))
        raise SourceError(
            f"Salesforce's Bulk API 2.0 results of job {job_id} kept breaking off after "
            f"{self.api.retry.attempts} attempts; the next sync reads them again."
        )


def _csv_rows(
    sobject: str, response: requests.Response, types: FieldType
) -> Iterator[dict[str, Any]]:
    response.raw.decode_content = True  # the body is gzip-compressed when asked for
    response.raw.auto_close = False  # else it reports closed to the wrapper at its end
    text = io.TextIOWrapper(response.raw, encoding="utf-8", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    rows = CsvRows(sobject, header, types)
    for values in reader:
        yield rows.row(values)


def read_ahead(items: Generator[T, None, None], depth: int) -> Iterator[T]:
    """`items`, made in a thread up to `depth` ahead of the reader: the next result set
    downloads and parses while the store writes the last page (SQLite and the socket release
    the GIL). An error in the thread is raised here; closing this iterator stops the thread."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def make() -> None:
        try:
            with closing(items):
                for item in items:
                    if stop.is_set():
                        return
                    queue.put(("item", item))
            queue.put(("end", None))
        except BaseException as error:  # handed to the reader, raised there
            queue.put(("error", error))

    thread = threading.Thread(target=make, name="bulk-results", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblocks a thread waiting to put
            with suppress(Empty):
                queue.get(timeout=0.1)

"""Bulk API 2.0 query jobs and the record-count resource for the loopback Salesforce of
tests/fake_salesforce.py, answering as Salesforce does.

- `POST jobs/query` {"operation": "query"|"queryAll", "query": ...} creates a job in state
  `UploadComplete` (a query with ORDER BY, LIMIT, an aggregate or a child subquery is refused
  400 as Bulk 2.0 refuses it; a bad field is refused with the SOQL error code);
- `GET jobs/query/<id>` moves it through `InProgress` to `JobComplete` (after `org.bulk_polls`
  looks), or to `Failed` with an `errorMessage` for an object in `org.bulk_failures`;
  `PATCH` with {"state": "Aborted"} aborts it;
- `GET jobs/query/<id>/results?locator=&maxRecords=` answers CSV as Salesforce writes it (every
  value quoted, header of field API names with relationship paths dotted, the empty string for
  null, `true`/`false`, dateTimes in UTC with `Z`), at most `org.bulk_page_size` records a set,
  with `Sforce-NumberOfRecords` and `Sforce-Locator` (base64 of the offset; "null" after the
  last set), gzip-compressed when the client accepts it. A set can be fetched again by its
  locator; over a generated object (the benchmark's) the rows are made set by set. The first
  `org.bulk_short_sets` sets sent lose half their rows (a transfer cut short) while
  `Sforce-NumberOfRecords` still counts them all.
- `GET limits/recordCount?sObjects=A,B` answers {"sObjects": [{"count": n, "name": "A"}]}.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_SELECT = re.compile(r"^\s*SELECT\s+(?P<fields>.*?)\s+FROM\s+(?P<sobject>\w+)", re.I | re.S)
_UNSUPPORTED = re.compile(r"\b(ORDER\s+BY|LIMIT|GROUP\s+BY|OFFSET|TYPEOF|COUNT\s*\()", re.I)

#: (status, JSON body) or (status, headers, bytes) — what the handler sends.
Answer = tuple[int, Any] | tuple[int, dict[str, str], bytes]


def _error(status: int, code: str, message: str) -> tuple[int, Any]:
    return status, [{"errorCode": code, "message": message}]


@dataclass
class QueryJob:
    id: str
    operation: str
    sobject: str
    fields: list[str]
    rows: Iterator[dict[str, Any]]
    created: str
    state: str = "UploadComplete"
    polls: int = 0
    error: str | None = None
    position: int = 0  # rows handed out so far, in order
    ahead: list[dict[str, Any]] = field(default_factory=list)
    sets: dict[int, tuple[bytes, int, int]] = field(default_factory=dict)  # offset -> set

    def info(self, version: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": "005000000000001AAA",
            "createdDate": self.created,
            "systemModstamp": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if self.state != "UploadComplete":
            body |= {"numberRecordsProcessed": 0, "retries": 0, "totalProcessingTime": 0}
        if self.error:
            body["errorMessage"] = self.error
        return body


class BulkJobs:
    """The org's query jobs. `org` is tests.fake_salesforce's FakeOrg."""

    def __init__(self, org: Any) -> None:
        self.org = org
        self.jobs: dict[str, QueryJob] = {}
        self.ids = itertools.count(1)

    # --- resources --------------------------------------------------------------------

    def create(self, body: str, version: str) -> Answer:
        try:
            request = json.loads(body or "{}")
        except json.JSONDecodeError:
            return _error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON.")
        operation, soql = request.get("operation"), str(request.get("query") or "")
        if operation not in ("query", "queryAll"):
            return _error(400, "INVALIDJOB", f"Invalid operation: {operation}")
        match = _SELECT.match(soql)
        if not match:
            return _error(400, "MALFORMED_QUERY", "unexpected token: the query is not a SELECT")
        if "(" in match.group("fields") or _UNSUPPORTED.search(soql):
            return _error(
                400,
                "INVALIDJOB",
                "This query is not supported by Bulk API 2.0 (child relationships, "
                "ORDER BY, LIMIT, GROUP BY, OFFSET, TYPEOF or aggregate functions).",
            )
        try:
            rows = self.org.run(soql, include_deleted=operation == "queryAll")
        except Exception as error:  # the fake's SoqlError, with Salesforce's code
            return _error(400, getattr(error, "code", "MALFORMED_QUERY"), str(error))
        sobject = match.group("sobject")
        job = QueryJob(
            id=f"750{next(self.ids):012d}AAA",
            operation=str(operation),
            sobject=sobject,
            fields=[f.strip() for f in match.group("fields").split(",")],
            rows=iter(rows),
            created=self.org.now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        )
        self.jobs[job.id] = job
        return 200, job.info(version)

    def info(self, job_id: str, version: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            job.state = "InProgress"
            if job.polls >= self.org.bulk_polls:
                failure = self.org.bulk_failures.get(job.sobject)
                job.state = "Failed" if failure else "JobComplete"
                job.error = failure
        return 200, job.info(version)

    def abort(self, job_id: str, body: str, version: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if json.loads(body or "{}").get("state") != "Aborted":
            return _error(400, "INVALIDJOBSTATE", "A query job can only be Aborted.")
        if job.state in ("JobComplete", "Failed", "Aborted"):
            return _error(400, "INVALIDJOBSTATE", f"The job is {job.state}.")
        job.state = "Aborted"
        return 200, job.info(version)

    def results(self, job_id: str, query: dict[str, list[str]], gzipped: bool) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state != "JobComplete":
            return _error(400, "INVALIDJOBSTATE", f"The job is {job.state}, not JobComplete.")
        locator = query.get("locator", [""])[0]
        try:
            offset = int(base64.b64decode(locator).decode()) if locator else 0
        except ValueError:
            return _error(400, "INVALID_LOCATOR", "The locator is not valid.")
        size = min(int(query.get("maxRecords", ["1000000"])[0]), self.org.bulk_page_size)
        taken = self._set(job, offset, size)
        if taken is None:
            return _error(400, "INVALID_LOCATOR", "The locator is not valid.")
        payload, count, following = taken
        if self.org.bulk_short_sets > 0 and count > 1:  # a transfer cut short by the network
            self.org.bulk_short_sets -= 1
            header, *rows = csv.reader(io.StringIO(payload.decode()))
            out = io.StringIO()
            csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
                [header, *rows[: count // 2]]
            )
            payload = out.getvalue().encode()
        headers = {
            "Content-Type": "text/csv",
            "Sforce-NumberOfRecords": str(count),
            "Sforce-Locator": base64.b64encode(str(following).encode()).decode()
            if following
            else "null",
        }
        if gzipped:
            payload = gzip.compress(payload, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return 200, headers, payload

    # --- result sets ------------------------------------------------------------------

    def _set(self, job: QueryJob, offset: int, size: int) -> tuple[bytes, int, int | None] | None:
        """The set from `offset`: its CSV, its records and the next set's offset (None: last).
        Sets already made are kept (a locator may be used again); rows are made in order."""
        if offset in job.sets:
            payload, count, following = job.sets[offset]
            return payload, count, following or None
        if offset != job.position:
            return None
        rows = job.ahead + list(itertools.islice(job.rows, size + 1 - len(job.ahead)))
        job.ahead, rows = rows[size:], rows[:size]
        job.position += len(rows)
        following = job.position if job.ahead else 0
        payload = render(job.fields, rows)
        job.sets[offset] = (payload, len(rows), following)
        if len(job.sets) > 2:  # keep the last two, as a benchmark's memory would otherwise grow
            del job.sets[min(job.sets)]
        return payload, len(rows), following or None


def render(fields: list[str], rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows shaped as the REST API's records, written as Bulk API 2.0's CSV."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(fields)
    paths = [name.split(".") for name in fields]
    for row in rows:
        writer.writerow([_text(_at(row, path)) for path in paths])
    return out.getvalue().encode()


def _at(row: dict[str, Any], path: list[str]) -> Any:
    value: Any = row
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    text = str(value)
    if len(text) == 28 and text.endswith("+0000") and text[10] == "T":
        return text[:-5] + "Z"  # REST's 2026-01-05T09:30:00.000+0000, Bulk's ...000Z
    return text


def record_counts(org: Any, names: Iterable[str]) -> dict[str, Any]:
    """The record-count resource: the live records of each named object the org has."""
    found = []
    for name in names:
        generated = org.generated.get(name)
        if generated is not None:
            count: int = (
                generated.count()
                if hasattr(generated, "count")
                else sum(1 for r in generated.since(None) if not r.get("IsDeleted"))
            )
        else:
            count = sum(1 for r in org.records.get(name, {}).values() if not r.get("IsDeleted"))
        if count:
            found.append({"count": count, "name": name})
    return {"sObjects": found}

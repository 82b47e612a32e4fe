"""Reading a Salesforce object as pages ordered by (SystemModstamp, Id), from a cursor.

A query that times out (QUERY_TIMEOUT) is retried over halves of its time window, resuming
after the last page already delivered, until a window is narrower than a minute.

A query whose URL would be longer than `max_url_length` (Salesforce refuses URIs over 16,384
bytes with 414 URI Too Long) is split into several queries over chunks of its fields, each with
the same conditions and order and with Id, read in step and merged by Id; a 414 answer halves
the length allowed and splits again. A record that changed between the chunks' queries (so the
chunks disagree on it) is left to the next run, which reads it again as it is modified later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from connectors.errors import SourceError
from connectors.incremental import Cursor, Page
from connectors.salesforce.client import QueryTimeout, SalesforceApi, UriTooLong
from connectors.salesforce.mapping import parse_datetime
from connectors.salesforce.soql import Query, equals, literal

MODSTAMP = "SystemModstamp"
EARLIEST = datetime(1999, 1, 1, tzinfo=UTC)  # before any Salesforce org existed
NARROWEST = timedelta(minutes=1)
IDS_PER_QUERY = 200  # Ids in one `Id IN (...)`, well inside the URL's length limit

#: Turns one page of Salesforce rows into a page of records.
BuildPage = Callable[[list[dict[str, Any]]], Page]


def cursor_of(row: dict[str, Any]) -> Cursor:
    modified = parse_datetime(row[MODSTAMP])
    assert modified is not None
    return Cursor(modified, str(row["Id"]))


def ordered(query: Query) -> Query:
    fields = ["Id", MODSTAMP, *query.fields]
    return Query(query.sobject, fields, query.where, ["SystemModstamp", "Id"], query.children)


def modstamp_pages(
    api: SalesforceApi,
    query: Query,
    start: Cursor | None,
    build: BuildPage,
    include_deleted: bool,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[Page]:
    """The query's rows modified at or after `start`, as pages each carrying its cursor."""
    windows: list[tuple[datetime | None, datetime | None]] = [
        (start.modified if start else None, None)
    ]
    while windows:
        low, high = windows.pop(0)
        conditions = []
        if low is not None:
            conditions.append(f"{MODSTAMP} >= {literal(low)}")
        if high is not None:
            conditions.append(f"{MODSTAMP} < {literal(high)}")
        delivered: datetime | None = None
        try:
            for rows in query_pages(api, ordered(query).having(*conditions), include_deleted):
                page = build(rows)
                if rows:
                    page.cursor = cursor_of(rows[-1])
                    delivered = page.cursor.modified
                yield page
        except QueryTimeout:
            low = delivered or low or EARLIEST
            end = high or now()
            if end - low < NARROWEST:
                raise
            middle = low + (end - low) / 2
            windows[0:0] = [(low, middle), (middle, high)]


def rows_by_id(
    api: SalesforceApi, query: Query, ids: Sequence[str]
) -> Iterator[list[dict[str, Any]]]:
    """The query's rows whose Id is one of `ids`, page by page."""
    for offset in range(0, len(ids), IDS_PER_QUERY):
        batch = list(ids[offset : offset + IDS_PER_QUERY])
        by_id = query.having(equals("Id", batch))
        yield from query_pages(
            api, Query(by_id.sobject, ["Id", *by_id.fields], by_id.where, (), by_id.children)
        )


# --- field lists too long for a URL -----------------------------------------------------


def query_pages(
    api: SalesforceApi, query: Query, include_deleted: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """The query's pages, split over field chunks merged by Id when its URL is too long."""
    limit = api.settings.max_url_length
    while True:
        chunks = split_fields(query, partial(_fits, api, include_deleted, limit))
        delivered = False
        try:
            if len(chunks) == 1:
                pages = api.query_pages(chunks[0].text(), include_deleted)
            else:
                pages = merged_pages([api.query_pages(c.text(), include_deleted) for c in chunks])
            for page in pages:
                delivered = True
                yield page
            return
        except UriTooLong:
            if delivered or limit <= 1000:
                raise
            limit //= 2


def _fits(api: SalesforceApi, include_deleted: bool, limit: int, query: Query) -> bool:
    return api.query_url_length(query.text(), include_deleted) <= limit


def split_fields(query: Query, fits: Callable[[Query], bool]) -> list[Query]:
    """`query` itself if it fits, else queries over chunks of its fields (each with Id and the
    order's fields, the first with the child subqueries), in the same order, ending with Id."""
    if fits(query):
        return [query]
    order = list(query.order_by) or ["Id"]
    if not any(item.split()[0] == "Id" for item in order):
        order.append("Id")
    keep = list(dict.fromkeys(["Id", *(item.split()[0] for item in order)]))
    rest = [f for f in dict.fromkeys(query.fields) if f not in keep]
    chunks: list[Query] = []
    current: list[str] = []

    def chunk(fields: list[str]) -> Query:
        children = query.children if not chunks else ()
        return Query(query.sobject, [*keep, *fields], query.where, order, children)

    for name in rest:
        if current and not fits(chunk([*current, name])):
            chunks.append(chunk(current))
            current = []
        current.append(name)
    last = chunk(current)
    chunks.append(last)
    if not all(fits(c) for c in chunks):
        raise SourceError(
            f"a query on {query.sobject} is too long for a URL even with one field per query; "
            "its conditions are too long."
        )
    return chunks


def merged_pages(streams: list[Iterator[list[dict[str, Any]]]]) -> Iterator[list[dict[str, Any]]]:
    """Pages of the first stream, each row completed with the same Id's rows from the others,
    read in step with it (the streams have the same conditions and order)."""
    driver, others = streams[0], streams[1:]
    buffers: list[dict[str, dict[str, Any]]] = [{} for _ in others]
    read = [0] * len(others)
    done = [False] * len(others)
    driven = 0
    for page in driver:
        driven += len(page)
        for n, stream in enumerate(others):
            while not done[n] and (
                read[n] < driven
                or (read[n] < driven + len(page) and any(r["Id"] not in buffers[n] for r in page))
            ):
                more = next(stream, None)
                if more is None:
                    done[n] = True
                    break
                read[n] += len(more)
                buffers[n].update((str(r["Id"]), r) for r in more)
        merged = []
        for row in page:
            parts = [buffer.pop(str(row["Id"]), None) for buffer in buffers]
            if any(part is None for part in parts):
                continue  # changed between the chunks' queries: the next run reads it again
            for part in parts:
                _merge(row, part)  # type: ignore[arg-type]
            merged.append(row)
        yield merged


def _merge(row: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(row.get(key), dict):
            _merge(row[key], value)
        else:
            row[key] = value

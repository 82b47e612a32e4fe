"""Reading a Salesforce object as pages ordered by (SystemModstamp, Id), from a cursor.

A query that times out (QUERY_TIMEOUT) is retried over halves of its time window, resuming
after the last page already delivered, until a window is narrower than a minute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.incremental import Cursor, Page
from connectors.salesforce.client import QueryTimeout, SalesforceApi
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
            for rows in api.query_pages(ordered(query).having(*conditions).text(), include_deleted):
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
        yield from api.query_pages(
            Query(by_id.sobject, ["Id", *by_id.fields], by_id.where, (), by_id.children).text()
        )

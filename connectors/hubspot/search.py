"""Reading what changed in a HubSpot object since its watermark, through the CRM search API,
without ever asking for more than the search's 10,000 results and without looping.

A run reads one time window `[watermark - look-back, sync start)` (capped at the sync's start,
so records changed during the sync wait for the next one) sorted by `hs_object_id`. It follows
`paging.next.after` until the next page would cross the 10,000-result cap, then starts a new
slice of the same window above the last id it read. It stops only when an answer has no
`paging.next`. Any number of changes, even all with one timestamp, is read exactly once.

The watermark is a `Cursor`. Between windows it is `Cursor(window end)`. Inside a window, each
committed page moves it to `Cursor(window's watermark, "<low ms>:<end ms>:<last id>")`, which
sorts after the window's starting watermark and before its end; an interrupted run resumes by
first finishing that window above the last committed id, then reading on from its end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.errors import SourceError
from connectors.hubspot.client import HubSpotApi, JsonObject, next_after
from connectors.hubspot.mapping import epoch_ms
from connectors.incremental import Cursor

SEARCH_CAP = 10_000  # HubSpot answers 400 to a search paging at or past this many results
#: The last-modified property of each object (contacts keep their own older name).
LAST_MODIFIED = {"contacts": "lastmodifieddate"}


def last_modified(object_type: str) -> str:
    return LAST_MODIFIED.get(object_type, "hs_lastmodifieddate")


@dataclass(frozen=True)
class Window:
    """Changes with `low <= last modified < high` and an id above `floor`; `base` is the
    watermark the window started from (its in-window cursors sort just after it)."""

    base: datetime
    low: datetime
    high: datetime
    floor: int = 0

    def cursor_after(self, object_id: str) -> Cursor:
        return Cursor(
            self.base, f"{epoch_ms(self.low)}:{epoch_ms(self.high)}:{int(object_id):020d}"
        )


def windows(stored: Cursor, lookback: timedelta, end: datetime) -> list[Window]:
    """The windows left to read from a stored watermark up to `end`."""
    planned: list[Window] = []
    base = stored.modified
    if stored.id:  # a window was interrupted: finish it first
        low_ms, high_ms, last = stored.id.split(":")
        high = _from_ms(high_ms)
        planned.append(Window(base, _from_ms(low_ms), high, int(last)))
        base = high
    if end > base:
        planned.append(Window(base, base - lookback, end))
    return planned


def changed_pages(
    api: HubSpotApi,
    object_type: str,
    properties: Sequence[str],
    window: Window,
    page_size: int,
) -> Iterator[tuple[list[JsonObject], Cursor]]:
    """Pages of the window's changes in id order, each with the cursor that covers it."""
    modified = last_modified(object_type)
    floor = window.floor
    after: str | None = None
    while True:
        filters = [
            {"propertyName": modified, "operator": "GTE", "value": epoch_ms(window.low)},
            {"propertyName": modified, "operator": "LT", "value": epoch_ms(window.high)},
        ]
        if floor:
            filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": str(floor)})
        request: JsonObject = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": list(dict.fromkeys(["hs_object_id", modified, *properties])),
            "limit": page_size,
        }
        if after is not None:
            request["after"] = after
        answer = api.search(object_type, request)
        rows = list(answer.get("results", []))
        following = next_after(answer)
        if following is None:
            yield rows, Cursor(window.high)
            return
        if rows:
            yield rows, window.cursor_after(str(rows[-1]["id"]))
        if int(following) + page_size > SEARCH_CAP:
            # The next page would pass the cap: a new slice above the last id read.
            if not rows:
                raise SourceError(
                    f"HubSpot's {object_type} search offered more results but sent none; "
                    "run the sync again."
                )
            floor = max(floor, *(int(r["id"]) for r in rows))
            after = None
        else:
            after = following


def _from_ms(text: str) -> datetime:
    return datetime.fromtimestamp(int(text) / 1000, UTC)

"""The larger SQLite page cache: widened only while its block runs, set back after (even when
the block fails), and used by every partner's customer sums but not by one partner's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, event

from kpi.aggregates import PartnerKey, Totals
from kpi.customers import add_customers
from kpi.page_cache import LARGE_CACHE_KB, larger_page_cache
from kpi.store import Store
from settings.periods import parse_period


def _cache_size(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA cache_size").scalar() or 0)


def test_the_cache_is_larger_only_inside_the_block(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite page cache")
    with store.engine.connect() as connection:
        before = _cache_size(connection)
        with larger_page_cache(connection):
            assert _cache_size(connection) == -LARGE_CACHE_KB
        assert _cache_size(connection) == before
        with pytest.raises(RuntimeError), larger_page_cache(connection, 4096):
            assert _cache_size(connection) == -4096
            raise RuntimeError("the block failed")
        assert _cache_size(connection) == before


@contextmanager
def _statements(connection: Connection) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", record)


@pytest.mark.parametrize("partner_ids", [None, ["p1"]])
def test_only_every_partners_customers_widen_the_cache(
    store: Store, partner_ids: list[str] | None
) -> None:
    period = parse_period("last-90d", date(2026, 11, 22))
    totals: dict[PartnerKey, Totals] = {}
    with store.engine.connect() as connection, _statements(connection) as seen:
        add_customers(connection, ZoneInfo("UTC"), totals, period, partner_ids)
        pragmas = [s for s in seen if s.startswith("PRAGMA cache_size")]
        selects = [i for i, s in enumerate(seen) if s.lstrip().upper().startswith("SELECT")]
        if store.engine.dialect.name != "sqlite" or partner_ids is not None:
            assert pragmas == []
            return
        widened = seen.index(f"PRAGMA cache_size=-{LARGE_CACHE_KB}")
        assert widened < min(selects) and max(selects) < len(seen) - 1
        assert seen[-1].startswith("PRAGMA cache_size=") and seen[-1] != seen[widened]
        assert _cache_size(connection) == -2000

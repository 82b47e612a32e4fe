"""SQLite schema objects of a table set aside while a bulk write runs, inside its transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from sqlalchemy import Connection


@contextmanager
def dropped(
    connection: Connection, kind: Literal["index", "trigger"], table: str
) -> Iterator[None]:
    """`table`'s indexes (not its primary key's) or triggers dropped while the block runs, then
    created again from their own SQL. In the caller's transaction, so no other connection ever
    sees them missing (and a rollback brings them back)."""
    found = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = ? AND tbl_name = ? AND sql IS NOT NULL",
        (kind, table),
    ).all()
    for name, _sql in found:
        connection.exec_driver_sql(f'DROP {kind.upper()} "{name}"')
    try:
        yield
    finally:
        for _name, sql in found:
            connection.exec_driver_sql(sql)

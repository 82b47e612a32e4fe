"""A larger SQLite page cache for the span of a few statements.

SQLite's default page cache is 2 MB per connection. A bulk load writing into indexed tables, or a
statement that seeks all over an index larger than that (every partner's customers seek each
customer's tickets in a 12 MB index at 250,000 tickets), then rereads the same pages from the
file again and again. The cache is widened only while such work runs and set back after, so an
idle pooled connection holds no more memory than before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

LARGE_CACHE_KB = 32 * 1024


@contextmanager
def larger_page_cache(connection: Connection, kb: int = LARGE_CACHE_KB) -> Iterator[None]:
    """SQLite's page cache at `kb` KiB while the block runs (other databases: unchanged)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size=-{kb}")
    try:
        yield
    finally:
        if not connection.invalidated:  # (else closed: its pragmas went with it)
            connection.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")

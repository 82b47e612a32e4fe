"""One sentence for each way the database can fail a command: a file that is not a SQLite
database, a read-only store, a store locked by another writer (with who holds it, when the
database can tell), a driver that is not installed, or anything else the driver reports."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import URL, Connection, text
from sqlalchemy.exc import DBAPIError

LOCK_SETTING = "database_lock_timeout_seconds"
PG_LOCK_NOT_AVAILABLE = "55P03"

_HOLDERS = text(
    """
    SELECT DISTINCT a.pid, a.application_name, a.client_addr, a.xact_start
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE l.granted AND a.pid <> pg_backend_pid() AND a.datname = current_database()
      AND n.nspname = ANY (current_schemas(false))
      AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                     'AccessExclusiveLock')
    ORDER BY a.xact_start
    """
)


def location(url: URL) -> str:
    """Where a store is, for a person: a SQLite file's path, else the URL without password."""
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database.removeprefix("file:")
    return url.render_as_string(hide_password=True)


def first_line(error: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's decorations."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(cause).__name__


def is_locked(error: DBAPIError) -> bool:
    """Another writer held the lock for longer than the configured wait."""
    if getattr(error.orig, "sqlstate", None) == PG_LOCK_NOT_AVAILABLE:
        return True
    return "database is locked" in first_line(error)


def describe(error: DBAPIError, where: str, lock_timeout: float, holders: Sequence[str]) -> str:
    """The sentence for a database fault at `where` (a URL without its password)."""
    reason = first_line(error)
    if "file is not a database" in reason:
        return (
            f"{where} is not a SQLite database ({reason}); point database_url in app.yaml "
            "at the store's file, or at a new file to start an empty store."
        )
    if "readonly database" in reason or "read-only" in reason:
        return (
            f"the database {where} is read-only ({reason}); let the user running partner-kpi "
            "write the file and its folder, or point database_url at a writable store."
        )
    if is_locked(error):
        held = f"held by {', '.join(holders)}" if holders else "held by another process"
        return (
            f"the database {where} stayed locked by another writer for {lock_timeout:g} s "
            f"({held}); try again when it is done, or raise {LOCK_SETTING} in app.yaml."
        )
    return f"cannot use the database {where}: {reason}."


def lock_holders(connection: Connection) -> list[str]:
    """PostgreSQL sessions holding write locks on the store's tables (those of the schemas on
    its search path: not other applications' in the same database), described for a person."""
    if connection.dialect.name != "postgresql":
        return []
    found = []
    for pid, name, address, since in connection.execute(_HOLDERS):
        who = name or "a session"
        host = f" from {address}" if address else ""
        start = f", in a transaction since {since:%Y-%m-%d %H:%M:%S %Z}" if since else ""
        found.append(f"{who} (pid {pid}{host}{start})")
    return found

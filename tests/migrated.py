"""Stores already brought up to the newest migration, so the `store` fixture does not run
every migration again for each test (on PostgreSQL a quarter of a second of DDL each time).

SQLite: one migrated file per worker, copied to the test's path. PostgreSQL: a pool of migrated
schemas per worker; a test's empty schema is swapped for a pooled one by renaming, and given
back emptied (TRUNCATE, then the rows the migrations themselves write) when the test is done.
A schema a test changed (another revision, other tables) or left locked is dropped, not reused.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from kpi.store import open_store
from tests.databases import schema_url

VERSION_TABLE = "alembic_version"


class MigratedStores:
    """Hands out migrated databases at the URLs the `database_url` fixture made."""

    def __init__(self, folder: Path, postgres_url: str | None) -> None:
        self._folder = folder
        self._sqlite_template: Path | None = None
        self._admin: Engine | None = create_engine(postgres_url) if postgres_url else None
        self._postgres_url = postgres_url
        self._seed: str | None = None  # a migrated schema never handed out: the shape to keep
        self._free: list[str] = []
        self._seeded: list[str] = []  # the tables the migrations write rows into

    @contextmanager
    def prepared(self, url: str) -> Iterator[None]:
        """The empty database at `url` (a SQLite file not yet written, or an empty PostgreSQL
        schema on the search path) holds a freshly migrated store for the time of the block."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            assert parsed.database
            if not Path(parsed.database).exists():
                shutil.copyfile(self._sqlite(), parsed.database)
            yield
            return
        schema = _search_path(url)
        if not self._swap_in(schema):
            yield  # the test (or a fixture of its) wrote there first: it migrates as it is
            return
        try:
            yield
        finally:
            self._give_back(schema)

    def close(self) -> None:
        if self._admin is None:
            return
        with self._admin.begin() as connection:
            for schema in [*self._free, *([self._seed] if self._seed else [])]:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self._admin.dispose()

    def _sqlite(self) -> Path:
        if self._sqlite_template is None:
            path = self._folder / "migrated-template.db"
            open_store(f"sqlite:///{path}").engine.dispose()
            self._sqlite_template = path
        return self._sqlite_template

    def _swap_in(self, schema: str) -> bool:
        """Replaces the empty schema `schema` by a pooled migrated one of that name; False
        (nothing done) when `schema` already holds tables."""
        with self._engine().begin() as connection:
            if _tables(connection, schema):
                return False
        pooled = self._free.pop() if self._free else self._migrated_schema()
        with self._engine().begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}"'))
            connection.execute(text(f'ALTER SCHEMA "{pooled}" RENAME TO "{schema}"'))
        return True

    def _give_back(self, schema: str) -> None:
        """Empties the test's schema and keeps it for the next test under a pool name; leaves an
        empty schema of the test's name for database_url to drop."""
        pooled = _new_name()
        try:
            with self._engine().begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                if not self._same_shape(connection, schema):
                    return
                tables = _tables(connection, schema)
                listed = ", ".join(f'"{schema}"."{t}"' for t in tables if t != VERSION_TABLE)
                connection.execute(text(f"TRUNCATE {listed} RESTART IDENTITY"))
                seed = self._seed_schema()
                for table in self._seeded:
                    connection.execute(
                        text(f'INSERT INTO "{schema}"."{table}" SELECT * FROM "{seed}"."{table}"')
                    )
                connection.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{pooled}"'))
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        except DBAPIError:
            return  # locked or changed: database_url drops it as it is
        self._free.append(pooled)

    def _same_shape(self, connection: Connection, schema: str) -> bool:
        seed = self._seed_schema()
        if _tables(connection, schema) != _tables(connection, seed):
            return False
        version = f'SELECT version_num FROM "{{}}"."{VERSION_TABLE}"'
        ours = connection.execute(text(version.format(schema))).scalars().all()
        return ours == connection.execute(text(version.format(seed))).scalars().all()

    def _seed_schema(self) -> str:
        if self._seed is None:
            self._seed = self._migrated_schema()
            with self._engine().connect() as connection:
                self._seeded = [
                    table
                    for table in _tables(connection, self._seed)
                    if table != VERSION_TABLE
                    and connection.execute(
                        text(f'SELECT EXISTS (SELECT 1 FROM "{self._seed}"."{table}")')
                    ).scalar_one()
                ]
        return self._seed

    def _migrated_schema(self) -> str:
        name = _new_name()
        with self._engine().begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        assert self._postgres_url is not None
        open_store(schema_url(self._postgres_url, name)).engine.dispose()
        return name

    def _engine(self) -> Engine:
        assert self._admin is not None, "no PostgreSQL configured"
        return self._admin


def _tables(connection: Connection, schema: str) -> list[str]:
    found = connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :schema ORDER BY tablename"),
        {"schema": schema},
    )
    return list(found.scalars())


def _search_path(url: str) -> str:
    options = make_url(url).query.get("options")
    value = options if isinstance(options, str) else ""
    prefix = "-csearch_path="
    assert value.startswith(prefix), f"not a test schema's URL: {url}"
    return value.removeprefix(prefix)


def _new_name() -> str:
    return f"pk_pool_{uuid.uuid4().hex[:12]}"

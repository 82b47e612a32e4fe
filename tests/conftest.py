"""Shared fixtures: a fresh store on SQLite, and on PostgreSQL when
PARTNER_KPI_TEST_DATABASE_URL names one (each test gets its own schema there)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kpi.store import Store, open_store
from tests import budget
from tests.databases import DATABASES, TEST_DATABASE_ENV, schema_url
from tests.demo_run import DemoRun, shared_demo_run
from tests.migrated import MigratedStores


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="Also run the tests marked slow (hypothesis searches, programs of thousands of "
        "partners, processes that must outlast a timeout). The README's test command does.",
    )


def pytest_configure(config: pytest.Config) -> None:
    budget.FULL = bool(config.getoption("--slow"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (the README's test command does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`partner-kpi demo` as a newcomer runs it, once for the whole test run."""
    return shared_demo_run(tmp_path_factory)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = os.environ[TEST_DATABASE_ENV]
    schema = f"pk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema_url(base, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedStores]:
    stores = MigratedStores(tmp_path_factory.mktemp("migrated"), os.environ.get(TEST_DATABASE_ENV))
    yield stores
    stores.close()


@pytest.fixture
def store(database_url: str, migrated: MigratedStores) -> Iterator[Store]:
    """A store at `database_url`, at the newest migration (prepared once, then reused)."""
    with migrated.prepared(database_url):
        opened = open_store(database_url)
        yield opened
        opened.engine.dispose()

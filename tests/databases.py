"""Which databases the store-backed tests run on: SQLite always, PostgreSQL too when
PARTNER_KPI_TEST_DATABASE_URL names one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_DATABASE_ENV = "PARTNER_KPI_TEST_DATABASE_URL"

DATABASES = ["sqlite"]
if os.environ.get(TEST_DATABASE_ENV):
    DATABASES.append("postgresql")


def schema_url(base: str, schema: str) -> str:
    """The PostgreSQL URL `base` with `schema` as its connections' search path."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(name="database_url")
def sqlite_only(tmp_path: Path) -> str:
    """For a module about Slack's side of things (what a user sees, access, transports), whose
    store calls the store's, scheduler's and survey tests already run on both databases:
    `from tests.databases import sqlite_only` puts that module's stores on SQLite only."""
    return f"sqlite:///{tmp_path / 'store.db'}"

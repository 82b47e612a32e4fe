"""The store's settings: the database kinds partner-kpi runs on, and the check of
app.yaml's `database_url`."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_FILE = "partner_kpi.db"

#: The database kinds partner-kpi runs on, each with an example URL for messages.
SUPPORTED_DATABASES = {
    "sqlite": "sqlite:///partner_kpi.db",
    "postgresql": "postgresql+psycopg://user@host/dbname",
}


def supported_list() -> str:
    return " or ".join(f"{name} ({url})" for name, url in SUPPORTED_DATABASES.items())


def database_url(value: str) -> str:
    """A URL SQLAlchemy parses, of a database kind partner-kpi runs on."""
    try:
        backend = make_url(value).get_backend_name()
    except Exception:
        raise ValueError(f"not a database URL; use {supported_list()}") from None
    if backend not in SUPPORTED_DATABASES:
        raise ValueError(f"partner-kpi does not run on {backend} databases; use {supported_list()}")
    return value


DatabaseUrl = Annotated[str, AfterValidator(database_url)]

"""`Store.stored_hashes` gives the stored row hash of each asked key that is stored, whether the
keys are a run of the table's order (read as one range on SQLite) or scattered across it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from kpi import schema
from kpi.models import Partner
from kpi.store import KINDS, Store


def test_hashes_of_a_run_and_of_scattered_keys(store: Store) -> None:
    partners = [
        KINDS[Partner].values(Partner(id=f"p{n:04d}", name=f"P{n}", joined_on=date(2026, 1, 1)))
        for n in range(0, 2000, 2)  # p0000, p0002, ...
    ]
    with store.transaction() as connection:
        store.upsert_rows(connection, Partner, partners, "files", 500)
        stored = dict(
            connection.execute(select(schema.partners.c.id, schema.partners.c.row_hash)).all()
        )
        run = [f"p{n:04d}" for n in range(100, 160)]  # every other one is not stored
        scattered = ["p0000", "p1998", "p0999", "x", "p1000"]  # the range holds most rows
        for keys in (run, scattered, [], run + scattered):
            expected = {key: stored[key] for key in keys if key in stored}
            assert store.stored_hashes(connection, Partner, keys) == expected
    assert len(expected) == 33

"""kpi_customers_version: a counter every write to customers or support_tickets bumps, in the
writing transaction, so a process can tell whether its in-memory copy of them is still the
stored one (`kpi.customer_image`)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

Customer and ticket writes mark no rollup (the rollups do not read them), so the rollups'
version says nothing about them. Triggers bump this one instead: one per statement on
PostgreSQL, one per row on SQLite (it has no statement triggers; about 2 µs a row). It starts
at the upgrade's moment in microseconds rather than at 0, so a store taken down to 0012 and
up again never meets a process's copy at a version it once had.
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("customers", "support_tickets")
_BUMP = "UPDATE kpi_customers_version SET version = version + 1;"
_SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")
# The table in the written table's own schema, whatever the search path of the writer (a
# TRUNCATE from another schema's connection, say).
_PG_BUMP = """
    CREATE FUNCTION kpi_bump_customers_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        EXECUTE format('UPDATE %I.kpi_customers_version SET version = version + 1',
                       TG_TABLE_SCHEMA);
        RETURN NULL;
    END $$
"""


def upgrade() -> None:
    table = op.create_table(
        "kpi_customers_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "version": time.time_ns() // 1000}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_BUMP)
        for name in TABLES:
            op.execute(
                f"CREATE TRIGGER kpi_version_{name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
                f" ON {name} FOR EACH STATEMENT EXECUTE FUNCTION kpi_bump_customers_version()"
            )
    else:
        for name in TABLES:
            for event in _SQLITE_EVENTS:
                op.execute(
                    f"CREATE TRIGGER kpi_version_{name}_{event.lower()} AFTER {event} ON {name}"
                    f" BEGIN {_BUMP} END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TABLES:
            op.execute(f"DROP TRIGGER kpi_version_{name} ON {name}")
        op.execute("DROP FUNCTION kpi_bump_customers_version()")
    else:
        for name in TABLES:
            for event in _SQLITE_EVENTS:
                op.execute(f"DROP TRIGGER kpi_version_{name}_{event.lower()}")
    op.drop_table("kpi_customers_version")

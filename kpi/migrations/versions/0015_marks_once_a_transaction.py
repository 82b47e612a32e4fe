"""PostgreSQL's version and mark triggers move a row once a transaction, not once a statement
or row

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

Migration 0013's statement trigger bumps the one version row for every statement that writes
customers or support_tickets. A driver's executemany (psycopg's, under SQLAlchemy) is one
statement a row, and PostgreSQL keeps every version of a row updated again and again in one
transaction, each update slower than the one before: 25,000 tickets took 22 s to load, and
5,000 / 10,000 / 20,000 rows 0.2 / 1.3 / 6.5 s (quadratic). A transaction's readers see none of
its rows before it commits, so one bump a transaction (and schema) tells them as much: the
trigger now remembers, in a setting local to the transaction, that it has bumped.

Migration 0004's row triggers mark each written deal's partner and stage change's hour stale
the same way (a mark's version + 1, per row), so a first load of 100,000 deals bumped each of
2,000 partners' marks 50 times, and a million deals 500 times: the same growing chains. A mark
already bumped by this transaction (its row's xmin is the transaction's id) is now left as it
is: the refresh that clears marks compares versions across transactions only (`kpi.rollups`).
SQLite's row triggers stay: it rewrites a row in place.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ONCE = """
    CREATE OR REPLACE FUNCTION kpi_bump_customers_version() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        bumped text := txid_current()::text || ':' || TG_TABLE_SCHEMA;
    BEGIN
        IF current_setting('partner_kpi.customers_bumped', true) IS DISTINCT FROM bumped THEN
            EXECUTE format('UPDATE %I.kpi_customers_version SET version = version + 1',
                           TG_TABLE_SCHEMA);
            PERFORM set_config('partner_kpi.customers_bumped', bumped, true);
        END IF;
        RETURN NULL;
    END $$
"""
_EACH = """
    CREATE OR REPLACE FUNCTION kpi_bump_customers_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        EXECUTE format('UPDATE %I.kpi_customers_version SET version = version + 1',
                       TG_TABLE_SCHEMA);
        RETURN NULL;
    END $$
"""


#: 0004's marks: a version + 1 at every write (`_BUMP`), and here once a transaction.
_BUMP = "DO UPDATE SET version = dirty.version + 1"
_ONCE_A_TRANSACTION = f"{_BUMP} WHERE dirty.xmin <> pg_current_xact_id()::xid"
_MARK_PARTNER = (
    "INSERT INTO kpi_dirty_partners AS dirty (partner_key, version) VALUES (coalesce({0}, ''), 1)"
    " ON CONFLICT (partner_key) DO UPDATE SET version = dirty.version + 1;"
)
_MARK_HOUR = (
    "INSERT INTO kpi_dirty_hours AS dirty (hour, version) VALUES (date_trunc('hour', {0}), 1)"
    " ON CONFLICT (hour) DO UPDATE SET version = dirty.version + 1;"
)
_MARK_DEAL_HOURS = (
    "INSERT INTO kpi_dirty_hours AS dirty (hour, version)"
    " SELECT DISTINCT date_trunc('hour', entered_at), 1 FROM stage_changes WHERE deal_id = {0}"
    " ON CONFLICT (hour) DO UPDATE SET version = dirty.version + 1;"
)
_SET_DEAL_PARTNER = (
    "UPDATE stage_changes SET partner_key = {0}"
    " WHERE deal_id = {1} AND partner_key IS DISTINCT FROM {0};"
)
#: 0004's function bodies, as it wrote them.
_MARKS = {
    "deals": f"""
        IF TG_OP IN ('UPDATE', 'DELETE') THEN {_MARK_PARTNER.format("OLD.partner_id")} END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            {_MARK_PARTNER.format("NEW.partner_id")}
            {_SET_DEAL_PARTNER.format("coalesce(NEW.partner_id, '')", "NEW.id")}
        END IF;
        IF TG_OP = 'INSERT' THEN {_MARK_DEAL_HOURS.format("NEW.id")} END IF;
        IF TG_OP = 'DELETE' THEN
            {_MARK_DEAL_HOURS.format("OLD.id")}
            {_SET_DEAL_PARTNER.format("NULL", "OLD.id")}
        END IF;
    """,
    "stage_changes": f"""
        IF TG_OP IN ('UPDATE', 'DELETE') THEN {_MARK_HOUR.format("OLD.entered_at")} END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN {_MARK_HOUR.format("NEW.entered_at")} END IF;
    """,
    "trainings": f"""
        IF TG_OP IN ('UPDATE', 'DELETE') THEN {_MARK_PARTNER.format("OLD.partner_id")} END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN {_MARK_PARTNER.format("NEW.partner_id")} END IF;
    """,
}


def _marks(once: bool) -> None:
    for table, body in _MARKS.items():
        if once:
            body = body.replace(_BUMP, _ONCE_A_TRANSACTION)
        op.execute(
            f"CREATE OR REPLACE FUNCTION kpi_mark_{table}() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN {body} RETURN NULL; END $$"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_ONCE)
        _marks(once=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_EACH)
        _marks(once=False)

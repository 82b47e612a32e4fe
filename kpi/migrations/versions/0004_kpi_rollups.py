"""kpi rollups: running totals per partner and day, stage entries per hour, and the triggers that
mark them stale

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Every write path (the connectors, the files source, a bulk load, a hand-made UPDATE) goes
through the record tables, so triggers there are the one place that sees every change: they
mark the partners and hours a write makes stale, and `kpi.rollups.refresh` rebuilds only those.
The rollups start empty and marked stale as a whole, so the first refresh builds them.
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = 255
EVERYTHING = datetime(1900, 1, 1)  # a dirty hour before any data: rebuild every hour

_MEASURES: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("won", sa.Integer()),
    ("lost", sa.Integer()),
    ("won_revenue", sa.BigInteger()),  # millionths
    ("won_with_amount", sa.Integer()),
    ("cycle_days", sa.Integer()),
    ("registered_closed", sa.Integer()),
    ("registered_won", sa.Integer()),
    ("upsell_won", sa.Integer()),
    ("new_revenue", sa.BigInteger()),  # millionths
    ("csat_sum", sa.Integer()),
    ("csat_count", sa.Integer()),
    ("created", sa.Integer()),
    ("created_value", sa.BigInteger()),  # millionths
    ("settled", sa.Integer()),
    ("settled_value", sa.BigInteger()),  # millionths
    ("registered", sa.Integer()),
    ("courses", sa.Integer()),
)

#: stage_changes' covering indexes: a period for every partner (by time), or for one partner.
_STAGE_CHANGE_INDEXES = {
    "ix_stage_changes_entered": ("entered_at", "partner_key", "stage"),
    "ix_stage_changes_left": ("left_at", "partner_key", "stage", "entered_at"),
    "ix_stage_changes_partner_entered": ("partner_key", "entered_at", "stage"),
    "ix_stage_changes_partner_left": ("partner_key", "left_at", "stage", "entered_at"),
}

_DEALS_CLOSED_COVER = (
    "closed_on",
    "status",
    "partner_id",
    "channel",
    "amount",
    "created_on",
    "type",
    "registered",
    "csat",
)

# --- SQLite: row triggers with UPSERTs into the dirty tables ----------------------------------
# (The statements below are put together from this file's constants only: no outside text.)

_SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00.000000', {0})"
_SQLITE_MARK_PARTNER = (
    "INSERT INTO kpi_dirty_partners (partner_key, version) VALUES (coalesce({0}, ''), 1)"
    " ON CONFLICT (partner_key) DO UPDATE SET version = kpi_dirty_partners.version + 1;"
)
_SQLITE_MARK_HOUR = (
    "INSERT INTO kpi_dirty_hours (hour, version) VALUES (" + _SQLITE_HOUR + ", 1)"  # noqa: S608
    " ON CONFLICT (hour) DO UPDATE SET version = kpi_dirty_hours.version + 1;"
)
_SQLITE_MARK_DEAL_HOURS = (
    "INSERT INTO kpi_dirty_hours (hour, version)"  # noqa: S608
    " SELECT DISTINCT " + _SQLITE_HOUR.format("entered_at") + ", 1 FROM stage_changes"
    " WHERE deal_id = {0}"
    " ON CONFLICT (hour) DO UPDATE SET version = kpi_dirty_hours.version + 1;"
)

_SQLITE_SET_DEAL_PARTNER = (
    "UPDATE stage_changes SET partner_key = {0} WHERE deal_id = {1} AND partner_key IS NOT {0};"
)
_SQLITE_DEAL_PARTNER = "(SELECT coalesce(partner_id, '') FROM deals WHERE id = NEW.deal_id)"
# Only when the writer did not already set it (kpi.store sets it, saving a second row write).
_SQLITE_SET_CHANGE_PARTNER = (
    f"UPDATE stage_changes SET partner_key = {_SQLITE_DEAL_PARTNER}"  # noqa: S608
    f" WHERE id = NEW.id AND partner_key IS NOT {_SQLITE_DEAL_PARTNER};"
)

_SQLITE_TRIGGERS = {
    "kpi_deals_insert": (
        "AFTER INSERT ON deals",
        _SQLITE_MARK_PARTNER.format("NEW.partner_id")
        + _SQLITE_MARK_DEAL_HOURS.format("NEW.id")
        + _SQLITE_SET_DEAL_PARTNER.format("coalesce(NEW.partner_id, '')", "NEW.id"),
    ),
    "kpi_deals_update": (
        "AFTER UPDATE ON deals",
        _SQLITE_MARK_PARTNER.format("OLD.partner_id")
        + _SQLITE_MARK_PARTNER.format("NEW.partner_id")
        + _SQLITE_SET_DEAL_PARTNER.format("coalesce(NEW.partner_id, '')", "NEW.id"),
    ),
    "kpi_deals_delete": (
        "AFTER DELETE ON deals",
        _SQLITE_MARK_PARTNER.format("OLD.partner_id")
        + _SQLITE_MARK_DEAL_HOURS.format("OLD.id")
        + _SQLITE_SET_DEAL_PARTNER.format("NULL", "OLD.id"),
    ),
    "kpi_stage_changes_insert": (
        "AFTER INSERT ON stage_changes",
        _SQLITE_MARK_HOUR.format("NEW.entered_at") + _SQLITE_SET_CHANGE_PARTNER,
    ),
    "kpi_stage_changes_update": (
        "AFTER UPDATE OF deal_id, stage, entered_at ON stage_changes",
        _SQLITE_MARK_HOUR.format("OLD.entered_at")
        + _SQLITE_MARK_HOUR.format("NEW.entered_at")
        + _SQLITE_SET_CHANGE_PARTNER,
    ),
    "kpi_stage_changes_delete": (
        "AFTER DELETE ON stage_changes",
        _SQLITE_MARK_HOUR.format("OLD.entered_at"),
    ),
    "kpi_trainings_insert": (
        "AFTER INSERT ON trainings",
        _SQLITE_MARK_PARTNER.format("NEW.partner_id"),
    ),
    "kpi_trainings_update": (
        "AFTER UPDATE ON trainings",
        _SQLITE_MARK_PARTNER.format("OLD.partner_id")
        + _SQLITE_MARK_PARTNER.format("NEW.partner_id"),
    ),
    "kpi_trainings_delete": (
        "AFTER DELETE ON trainings",
        _SQLITE_MARK_PARTNER.format("OLD.partner_id"),
    ),
}

# --- PostgreSQL: one trigger function per table ------------------------------------------------

_PG_MARK_PARTNER = (
    "INSERT INTO kpi_dirty_partners AS dirty (partner_key, version) VALUES (coalesce({0}, ''), 1)"
    " ON CONFLICT (partner_key) DO UPDATE SET version = dirty.version + 1;"
)
_PG_MARK_HOUR = (
    "INSERT INTO kpi_dirty_hours AS dirty (hour, version) VALUES (date_trunc('hour', {0}), 1)"
    " ON CONFLICT (hour) DO UPDATE SET version = dirty.version + 1;"
)
_PG_MARK_DEAL_HOURS = (
    "INSERT INTO kpi_dirty_hours AS dirty (hour, version)"
    " SELECT DISTINCT date_trunc('hour', entered_at), 1 FROM stage_changes WHERE deal_id = {0}"
    " ON CONFLICT (hour) DO UPDATE SET version = dirty.version + 1;"
)

_PG_SET_DEAL_PARTNER = (
    "UPDATE stage_changes SET partner_key = {0}"
    " WHERE deal_id = {1} AND partner_key IS DISTINCT FROM {0};"
)

_PG_FUNCTIONS = {
    "deals": f"""
        IF TG_OP IN ('UPDATE', 'DELETE') THEN {_PG_MARK_PARTNER.format("OLD.partner_id")} END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            {_PG_MARK_PARTNER.format("NEW.partner_id")}
            {_PG_SET_DEAL_PARTNER.format("coalesce(NEW.partner_id, '')", "NEW.id")}
        END IF;
        IF TG_OP = 'INSERT' THEN {_PG_MARK_DEAL_HOURS.format("NEW.id")} END IF;
        IF TG_OP = 'DELETE' THEN
            {_PG_MARK_DEAL_HOURS.format("OLD.id")}
            {_PG_SET_DEAL_PARTNER.format("NULL", "OLD.id")}
        END IF;
    """,
    "stage_changes": f"""
        IF TG_OP IN ('UPDATE', 'DELETE') THEN {_PG_MARK_HOUR.format("OLD.entered_at")} END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN {_PG_MARK_HOUR.format("NEW.entered_at")} END IF;
    """,
    "trainings": f"""
        IF TG_OP IN ('UPDATE', 'DELETE') THEN {_PG_MARK_PARTNER.format("OLD.partner_id")} END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN {_PG_MARK_PARTNER.format("NEW.partner_id")} END IF;
    """,
}
_PG_EVENTS = {
    "deals": "INSERT OR UPDATE OR DELETE",
    "stage_changes": "INSERT OR UPDATE OF deal_id, stage, entered_at OR DELETE",
    "trainings": "INSERT OR UPDATE OR DELETE",
}


# Before a stage change is written, its deal's partner (PostgreSQL can set NEW directly).
_PG_CHANGE_PARTNER = """
    CREATE FUNCTION kpi_stage_change_partner() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.partner_key := (SELECT coalesce(partner_id, '') FROM deals WHERE id = NEW.deal_id);
        RETURN NEW;
    END $$
"""


def upgrade() -> None:
    with op.batch_alter_table("stage_changes") as batch:
        batch.add_column(sa.Column("partner_key", sa.String(length=ID), nullable=True))
        batch.drop_index("ix_stage_changes_entered")
        batch.drop_index("ix_stage_changes_left")
    for name, columns in _STAGE_CHANGE_INDEXES.items():
        op.create_index(name, "stage_changes", list(columns))
    # every partner's closed deals per channel in a period, from the index alone
    op.drop_index("ix_deals_closed", "deals")
    op.create_index("ix_deals_closed", "deals", list(_DEALS_CLOSED_COVER))
    # every partner's answers in a period (the ranking's NPS), without a scan
    op.create_index(
        "ix_survey_responses_submitted", "survey_responses", ["submitted_at", "partner_id", "score"]
    )
    op.create_table(
        "kpi_partner_days",
        sa.Column("partner_key", sa.String(length=ID), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, kind, nullable=False) for name, kind in _MEASURES),
        sa.PrimaryKeyConstraint("partner_key", "day"),
        sqlite_with_rowid=False,  # clustered by (partner, day): one seek finds a row
    )
    op.create_table(
        "kpi_partner_keys",
        sa.Column("partner_key", sa.String(length=ID), nullable=False),
        sa.PrimaryKeyConstraint("partner_key"),
    )
    op.create_table(
        "kpi_stage_hours",
        sa.Column("stage", sa.String(length=255), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("stage", "hour"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "kpi_dirty_partners",
        sa.Column("partner_key", sa.String(length=ID), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("partner_key"),
    )
    op.create_table(
        "kpi_dirty_hours",
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_CHANGE_PARTNER)
        op.execute(
            "CREATE TRIGGER kpi_stage_change_partner BEFORE INSERT OR UPDATE OF deal_id"
            " ON stage_changes FOR EACH ROW EXECUTE FUNCTION kpi_stage_change_partner()"
        )
        for table, body in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION kpi_mark_{table}() RETURNS trigger LANGUAGE plpgsql AS $$"
                f" BEGIN {body} RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER kpi_mark_{table} AFTER {_PG_EVENTS[table]} ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION kpi_mark_{table}()"
            )
    else:
        for name, (event, body) in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event} BEGIN {body} END")
    # Whatever the store already holds: build everything at the first refresh (which also
    # fills stage_changes.partner_key, in one statement rather than here).
    op.execute("INSERT INTO kpi_dirty_partners (partner_key, version) VALUES ('*', 1)")
    op.execute(
        sa.text("INSERT INTO kpi_dirty_hours (hour, version) VALUES (:hour, 1)").bindparams(
            sa.bindparam("hour", EVERYTHING, type_=sa.DateTime())
        )
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER kpi_stage_change_partner ON stage_changes")
        op.execute("DROP FUNCTION kpi_stage_change_partner()")
        for table in _PG_FUNCTIONS:
            op.execute(f"DROP TRIGGER kpi_mark_{table} ON {table}")
            op.execute(f"DROP FUNCTION kpi_mark_{table}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    for table in (
        "kpi_dirty_hours",
        "kpi_dirty_partners",
        "kpi_stage_hours",
        "kpi_partner_keys",
        "kpi_partner_days",
    ):
        op.drop_table(table)
    op.drop_index("ix_survey_responses_submitted", "survey_responses")
    op.drop_index("ix_deals_closed", "deals")
    op.create_index("ix_deals_closed", "deals", ["closed_on"])
    for name in _STAGE_CHANGE_INDEXES:
        op.drop_index(name, "stage_changes")
    with op.batch_alter_table("stage_changes") as batch:
        batch.drop_column("partner_key")
        batch.create_index("ix_stage_changes_entered", ["entered_at"])
        batch.create_index("ix_stage_changes_left", ["left_at"])

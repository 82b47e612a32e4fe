"""The store's tables (SQLAlchemy Core). Alembic migrations in kpi/migrations create them.

Every record table is keyed by a string `id`: the CRM id where the record has one, else a
natural key built by `kpi.store.natural_key` (stage changes, training completions). `source`
says which connector wrote a row and `row_hash` lets a sync tell new, changed and unchanged rows
apart without comparing every column. Dates are calendar dates in the deployment's timezone;
timestamps are naive UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    literal_column,
    text,
)

metadata = MetaData()

ID = 255  # Salesforce ids are 18 characters, HubSpot's up to 20; natural keys are longer.


def _record_columns() -> list[Column[object]]:
    return [
        Column("source", String(32), nullable=False),
        Column("row_hash", String(32), nullable=False),
    ]


partners = Table(
    "partners",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("tier", String(100)),
    Column("joined_on", Date, nullable=False),
    Column("left_on", Date),
    Column("owner_email", String(320)),
    Column("contact_emails", JSON, nullable=False),
    Column("region", String(100)),
    *_record_columns(),
)

deals = Table(
    "deals",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("partner_id", String(ID)),
    Column("name", Text, nullable=False),
    Column("amount", Double),  # in the deployment's currency
    Column("original_amount", Double),  # as the CRM has it, in `currency`
    Column("currency", String(3)),
    Column("stage", String(255)),
    Column("status", String(8), nullable=False),
    Column("created_on", Date, nullable=False),
    Column("closed_on", Date),
    Column("expected_close_on", Date),
    Column("type", String(8)),
    Column("lead_source", String(255)),
    Column("channel", String(8), nullable=False),
    Column("registered", Boolean, nullable=False),
    Column("registered_on", Date),
    Column("csat", SmallInteger),
    *_record_columns(),
    Index("ix_deals_partner_closed", "partner_id", "closed_on"),
    # covering what every partner's closed deals per channel need, so the period is one range
    Index(
        "ix_deals_closed",
        "closed_on",
        "status",
        "partner_id",
        "channel",
        "amount",
        "created_on",
        "type",
        "registered",
        "csat",
    ),
    Index("ix_deals_partner_created", "partner_id", "created_on"),
    # the open deals only (migration 0009): a goal's forecast (one partner's, by expected close
    # date) and every partner's open deals past their close date (at-risk, the App Home). A
    # full index led by `status` would tempt SQLite's planner for the closed deals too.
    Index(
        "ix_deals_partner_open",
        "partner_id",
        "expected_close_on",
        "created_on",
        "amount",
        sqlite_where=text("status = 'open'"),
        postgresql_where=text("status = 'open'"),
    ),
)

#: The condition of the partial open-deal index, as a literal: SQLite uses a partial index only
#: for a query whose WHERE holds the index's own terms, never for a bound parameter.
OPEN_DEAL = deals.c.status == literal_column("'open'")

stage_changes = Table(
    "stage_changes",
    metadata,
    Column("id", String(ID * 2), primary_key=True),
    Column("deal_id", String(ID), nullable=False),
    Column("stage", String(255), nullable=False),
    Column("entered_at", DateTime, nullable=False),
    # When the deal's next stage change began: the end of this stay (null while it lasts).
    # Derived by the store after every sync, so stage durations are a range scan.
    Column("left_at", DateTime),
    # The deal's partner ('' for a direct deal, null while the deal is unknown), kept by the
    # triggers of migration 0004, so stage statistics need no join to deals. Covering indexes
    # serve a period's entries by time (the rollups' stage hours) and entries and ended stays by
    # (partner, stage) pair (migration 0014 dropped the by-time index of ended stays: unread).
    Column("partner_key", String(ID)),
    *_record_columns(),
    Index("ix_stage_changes_deal", "deal_id", "entered_at"),
    Index("ix_stage_changes_entered", "entered_at", "partner_key", "stage"),
    Index("ix_stage_changes_partner_stage_entered", "partner_key", "stage", "entered_at"),
    Index("ix_stage_changes_partner_stage_left", "partner_key", "stage", "left_at", "entered_at"),
)

# The CRM's own stage order (Salesforce SortOrder, HubSpot displayOrder), per source.
pipeline_stages = Table(
    "pipeline_stages",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("stage", String(255), primary_key=True),
    Column("sort_order", Integer, nullable=False),
)

trainings = Table(
    "trainings",
    metadata,
    Column("id", String(ID * 2), primary_key=True),
    Column("partner_id", String(ID), nullable=False),
    Column("course", Text, nullable=False),
    Column("completed_on", Date, nullable=False),
    # the completion's number among identical rows (migration 0011): 1, 2, …
    Column("occurrence", Integer, nullable=False, server_default="1"),
    *_record_columns(),
    Index("ix_trainings_partner_completed", "partner_id", "completed_on"),
)

# Survey answers exist only here: no sync, rebuild or deletion sweep ever removes them.
survey_responses = Table(
    "survey_responses",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("partner_id", String(ID), nullable=False),
    Column("respondent", String(320)),
    Column("campaign_id", String(255)),
    Column("score", SmallInteger, nullable=False),
    Column("comment", Text),
    Column("submitted_at", DateTime, nullable=False),
    *_record_columns(),
    Index("ix_survey_responses_partner_submitted", "partner_id", "submitted_at"),
    Index("ix_survey_responses_submitted", "submitted_at", "partner_id", "score"),
)

# A watermark per source and object; it only advances once the rows it covers are committed.
sync_state = Table(
    "sync_state",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("object", String(64), primary_key=True),
    Column("watermark", Text),
    Column("updated_at", DateTime, nullable=False),
)

# One row per sync: its outcome and report, so the bot can say how fresh its data is.
sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("full", Boolean, nullable=False),
    Column("status", String(16), nullable=False),  # running | ok | failed | stopped
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("report", JSON),
    Column("error", Text),
    Index("ix_sync_runs_status_finished", "status", "finished_at"),
)

# Exactly-once posts: a replica claims a key (digest/channel/period, survey/round/person)
# before it posts, and records Slack's message ts once the post succeeded.
send_log = Table(
    "send_log",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("claimed_by", String(255), nullable=False),
    Column("claimed_at", DateTime, nullable=False),
    Column("posted_at", DateTime),
    Column("slack_ts", String(64)),
    Column("detail", JSON),
)

# Every question asked of the bot: who, what, where, when, and whether it was answered.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(255)),
    Column("channel_id", String(64)),
    Column("request", Text, nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("reason", Text),
    Index("ix_audit_log_at", "at"),
)

# --- KPI rollups (kpi/rollups.py): derived from the record tables, never edited by hand ---------
# Triggers (migration 0004) mark what a write makes stale; `kpi.rollups.refresh` rebuilds it.

#: Per partner (`''`: direct deals) and day, the running totals of everything a period sums up
#: to that day inclusive, so any period is the difference of two rows per partner.
kpi_partner_days = Table(
    "kpi_partner_days",
    metadata,
    Column("partner_key", String(ID), primary_key=True),
    Column("day", Date, primary_key=True),
    # deals closed (won or lost) up to the day, by closed_on
    Column("won", Integer, nullable=False),
    Column("lost", Integer, nullable=False),
    # money columns hold integer millionths of `currency`, so that the difference of two
    # running totals is exactly the period's sum (floats would leave ~1e-9 of noise, enough to
    # break ties between partners that the quality score's percentiles must see)
    Column("won_revenue", BigInteger, nullable=False),
    Column("won_with_amount", Integer, nullable=False),
    Column("cycle_days", Integer, nullable=False),
    Column("registered_closed", Integer, nullable=False),
    Column("registered_won", Integer, nullable=False),
    Column("upsell_won", Integer, nullable=False),
    Column("new_revenue", BigInteger, nullable=False),
    Column("csat_sum", Integer, nullable=False),
    Column("csat_count", Integer, nullable=False),
    # the open pipeline at a day's end is what was created minus what was settled (closed, on
    # its close date or its creation date, whichever is later) up to it
    Column("created", Integer, nullable=False),
    Column("created_value", BigInteger, nullable=False),
    Column("settled", Integer, nullable=False),
    Column("settled_value", BigInteger, nullable=False),
    Column("registered", Integer, nullable=False),  # by registered_on, else created_on
    Column("courses", Integer, nullable=False),  # training completions by completed_on
    sqlite_with_rowid=False,
)

#: The partner keys that have rows in kpi_partner_days (a period reads two rows per key).
kpi_partner_keys = Table(
    "kpi_partner_keys",
    metadata,
    Column("partner_key", String(ID), primary_key=True),
)

#: Per stage and UTC hour, the running count of entries into the stage by known deals.
kpi_stage_hours = Table(
    "kpi_stage_hours",
    metadata,
    Column("stage", String(255), primary_key=True),
    Column("hour", DateTime, primary_key=True),
    Column("entered", Integer, nullable=False),
    sqlite_with_rowid=False,
)

#: What writes made stale, with a version each write bumps, so a refresh that raced a write
#: leaves the mark in place (it deletes only the version it rebuilt). The key `*` means all.
kpi_dirty_partners = Table(
    "kpi_dirty_partners",
    metadata,
    Column("partner_key", String(ID), primary_key=True),
    Column("version", Integer, nullable=False),
)

#: One row (id 1): a counter every rollup rebuild bumps in its transaction (migration 0012), so
#: numbers cached from the rollups are known stale once it moves.
kpi_rollups_version = Table(
    "kpi_rollups_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

#: One row (id 1): a counter every write to `customers` or `support_tickets` bumps in its
#: transaction (triggers of migration 0013), so a copy of them is known stale once it moves.
kpi_customers_version = Table(
    "kpi_customers_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

kpi_dirty_hours = Table(
    "kpi_dirty_hours",
    metadata,
    Column("hour", DateTime, primary_key=True),
    Column("version", Integer, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("partner_id", String(ID)),
    Column("name", Text, nullable=False),
    Column("became_customer_on", Date, nullable=False),
    Column("churned_on", Date),
    Column("mrr", Double),  # in the deployment's currency
    Column("original_mrr", Double),  # as the source has it, in `currency`
    Column("currency", String(3)),
    Column("onboarded_on", Date),
    Column("referred_by", String(ID)),
    *_record_columns(),
    Index("ix_customers_partner_became", "partner_id", "became_customer_on"),
    Index("ix_customers_referred_by", "referred_by"),
    # covering what every partner's customer sums, tickets and referrals read (migration 0011),
    # so they never visit the table's rows
    Index(
        "ix_customers_partner_covering",
        "partner_id",
        "became_customer_on",
        "churned_on",
        "onboarded_on",
        "mrr",
        "id",
    ),
)

support_tickets = Table(
    "support_tickets",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False),
    Column("opened_at", DateTime, nullable=False),
    *_record_columns(),
    Index("ix_support_tickets_customer_opened", "customer_id", "opened_at"),
)

goals = Table(
    "goals",
    metadata,
    Column("id", String(ID), primary_key=True),  # source|partner|kpi|start|end
    Column("partner_id", String(ID)),  # null: the program
    Column("kpi", String(64), nullable=False),
    Column("period", String(64), nullable=False),  # as written
    Column("start_on", Date, nullable=False),
    Column("end_on", Date, nullable=False),  # exclusive
    Column("target", Double, nullable=False),
    Column("direction", String(16), nullable=False),
    Column("set_by", String(64)),  # the Slack user who set it (source `slack`)
    Column("set_at", DateTime),
    *_record_columns(),
    Index("ix_goals_partner", "partner_id"),  # a scorecard reads one partner's goals
)

RECORD_TABLES = {
    "partners": partners,
    "deals": deals,
    "stage_changes": stage_changes,
    "trainings": trainings,
    "survey_responses": survey_responses,
    "customers": customers,
    "support_tickets": support_tickets,
    "goals": goals,
}

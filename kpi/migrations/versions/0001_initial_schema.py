"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deals",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("partner_id", sa.String(length=255), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=True),
        sa.Column("original_amount", sa.Double(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("stage", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("expected_close_on", sa.Date(), nullable=True),
        sa.Column("type", sa.String(length=8), nullable=True),
        sa.Column("lead_source", sa.String(length=255), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("registered_on", sa.Date(), nullable=True),
        sa.Column("csat", sa.SmallInteger(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index("ix_deals_closed", ["closed_on"], unique=False)
        batch_op.create_index("ix_deals_partner_closed", ["partner_id", "closed_on"], unique=False)
        batch_op.create_index(
            "ix_deals_partner_created", ["partner_id", "created_on"], unique=False
        )

    op.create_table(
        "partners",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tier", sa.String(length=100), nullable=True),
        sa.Column("joined_on", sa.Date(), nullable=False),
        sa.Column("left_on", sa.Date(), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column("contact_emails", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "send_log",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("posted_at", sa.DateTime(), nullable=True),
        sa.Column("slack_ts", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "pipeline_stages",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=255), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "stage"),
    )
    op.create_table(
        "stage_changes",
        sa.Column("id", sa.String(length=510), nullable=False),
        sa.Column("deal_id", sa.String(length=255), nullable=False),
        sa.Column("stage", sa.String(length=255), nullable=False),
        sa.Column("entered_at", sa.DateTime(), nullable=False),
        sa.Column("left_at", sa.DateTime(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.create_index("ix_stage_changes_deal", ["deal_id", "entered_at"], unique=False)
        batch_op.create_index("ix_stage_changes_entered", ["entered_at"], unique=False)
        batch_op.create_index("ix_stage_changes_left", ["left_at"], unique=False)

    op.create_table(
        "survey_responses",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("partner_id", sa.String(length=255), nullable=False),
        sa.Column("respondent", sa.String(length=320), nullable=True),
        sa.Column("campaign_id", sa.String(length=255), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_responses_partner_submitted", ["partner_id", "submitted_at"], unique=False
        )

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_runs_status_finished", ["status", "finished_at"], unique=False
        )

    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "object"),
    )
    op.create_table(
        "trainings",
        sa.Column("id", sa.String(length=510), nullable=False),
        sa.Column("partner_id", sa.String(length=255), nullable=False),
        sa.Column("course", sa.Text(), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trainings_partner_completed", ["partner_id", "completed_on"], unique=False
        )


def downgrade() -> None:
    # Survey answers exist only in this store; no migration may drop them.
    raise RuntimeError("the initial schema is not downgraded: it holds the survey answers")

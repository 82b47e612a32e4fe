"""surveys: contacts resolved to Slack users, rounds, DMs sent and opt-outs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_contacts",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("slack_user_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email"),
    )
    op.create_table(
        "survey_rounds",
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("remind_at", sa.DateTime(), nullable=True),
        sa.Column("closes_at", sa.DateTime(), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("campaign", "round_id"),
    )
    op.create_table(
        "survey_deliveries",
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("slack_user_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("partner_id", sa.String(length=255), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=True),
        sa.Column("message_ts", sa.String(length=64), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("campaign", "round_id", "slack_user_id"),
    )
    op.create_index(
        "ix_survey_deliveries_message",
        "survey_deliveries",
        ["channel_id", "message_ts"],
        unique=False,
    )
    op.create_table(
        "survey_opt_outs",
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("slack_user_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "slack_user_id"),
    )


def downgrade() -> None:
    op.drop_table("survey_opt_outs")
    op.drop_index("ix_survey_deliveries_message", table_name="survey_deliveries")
    op.drop_table("survey_deliveries")
    op.drop_table("survey_rounds")
    op.drop_table("survey_contacts")

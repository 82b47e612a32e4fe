"""goals: the targets of kpi-spec.md section 9, from goals.csv and from Slack

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "goals",
        sa.Column("id", sa.String(length=255), primary_key=True),
        sa.Column("partner_id", sa.String(length=255)),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=64), nullable=False),
        sa.Column("start_on", sa.Date(), nullable=False),
        sa.Column("end_on", sa.Date(), nullable=False),
        sa.Column("target", sa.Double(), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("set_by", sa.String(length=64)),
        sa.Column("set_at", sa.DateTime()),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
    )
    # A scorecard reads one partner's goals.
    op.create_index("ix_goals_partner", "goals", ["partner_id"])
    # A revenue or deal goal's forecast reads one partner's open deals by expected close date:
    # a partial index of the open deals only (a few percent of them), one seek per partner.
    op.create_index(
        "ix_deals_partner_open",
        "deals",
        ["partner_id", "expected_close_on", "created_on", "amount"],
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("ix_deals_partner_open", table_name="deals")
    op.drop_table("goals")

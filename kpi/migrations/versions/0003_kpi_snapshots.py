"""kpi snapshots: every partner's KPIs at each scheduled run

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpi_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_at", sa.DateTime(), nullable=False),
        sa.Column("period", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("partner_id", sa.String(length=255), nullable=False),
        sa.Column("kpis", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_at", "period", "partner_id", name="uq_kpi_snapshots_run"),
    )
    op.create_index(
        "ix_kpi_snapshots_period_run", "kpi_snapshots", ["period", "run_at"], unique=False
    )
    op.create_index(
        "ix_kpi_snapshots_partner_run", "kpi_snapshots", ["partner_id", "run_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_kpi_snapshots_partner_run", table_name="kpi_snapshots")
    op.drop_index("ix_kpi_snapshots_period_run", table_name="kpi_snapshots")
    op.drop_table("kpi_snapshots")

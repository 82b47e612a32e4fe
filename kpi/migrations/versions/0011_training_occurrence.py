"""trainings.occurrence: identical training rows are separate completions (issue #16); a
covering index for the customer KPIs of every partner

Revision ID: 0011
Revises: 0009 (a 0010 was folded into 0009 before release: one partial index of the open deals)
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy on SQLite), so migration 0004's triggers stay.
    op.add_column(
        "trainings",
        sa.Column("occurrence", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_index(
        "ix_customers_partner_covering",
        "customers",
        ["partner_id", "became_customer_on", "churned_on", "onboarded_on", "mrr", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_customers_partner_covering", table_name="customers")
    op.drop_column("trainings", "occurrence")

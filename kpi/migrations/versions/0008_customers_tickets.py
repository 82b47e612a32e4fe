"""customers and support_tickets: the records of kpi-spec.md section 7

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _record_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=255), primary_key=True),
        sa.Column("partner_id", sa.String(length=255)),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("became_customer_on", sa.Date(), nullable=False),
        sa.Column("churned_on", sa.Date()),
        sa.Column("mrr", sa.Double()),
        sa.Column("original_mrr", sa.Double()),
        sa.Column("currency", sa.String(length=3)),
        sa.Column("onboarded_on", sa.Date()),
        sa.Column("referred_by", sa.String(length=255)),
        *_record_columns(),
    )
    op.create_index(
        "ix_customers_partner_became", "customers", ["partner_id", "became_customer_on"]
    )
    op.create_index("ix_customers_referred_by", "customers", ["referred_by"])
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.String(length=255), primary_key=True),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        *_record_columns(),
    )
    op.create_index(
        "ix_support_tickets_customer_opened", "support_tickets", ["customer_id", "opened_at"]
    )


def downgrade() -> None:
    op.drop_table("support_tickets")
    op.drop_table("customers")

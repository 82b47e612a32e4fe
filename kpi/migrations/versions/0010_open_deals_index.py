"""deals indexed by (status, expected_close_on, created_on, partner_id)

Every partner's open deals past their expected close date (the at-risk rule of the App Home
and `at-risk`) become one range of this covering index instead of a scan of every deal.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-03
"""

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

NAME = "ix_deals_open_expected"
COLUMNS = ["status", "expected_close_on", "created_on", "partner_id"]


def upgrade() -> None:
    op.create_index(NAME, "deals", COLUMNS)


def downgrade() -> None:
    op.drop_index(NAME, "deals")

"""partners.region: an optional region per partner, for digests that cover one region

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("partners", sa.Column("region", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch:  # SQLite rebuilds the table
        batch.drop_column("region")

"""stage_changes loses ix_stage_changes_left (left_at, partner_key, stage, entered_at): no query
reads it any more

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05

Migration 0004 made it the covering index of every partner's stays that ended in a period, read
by time. Since 0007 those stays are counted per (partner, stage) pair through
ix_stage_changes_partner_stage_left, which the stage image (`kpi.stage_image`) reads too: an
EXPLAIN QUERY PLAN of every statement the test suite runs on SQLite (the triggers' and the
images' included), on its stores and on a 1M-deal one, shows no plan reading this index. It
only cost writes: 320 MB of the 1M-deal store, and 6 s of its first load's index builds.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_NAME = "ix_stage_changes_left"
_COLUMNS = ["left_at", "partner_key", "stage", "entered_at"]  # as migration 0004 made it


def upgrade() -> None:
    op.drop_index(_NAME, "stage_changes")


def downgrade() -> None:
    op.create_index(_NAME, "stage_changes", _COLUMNS)

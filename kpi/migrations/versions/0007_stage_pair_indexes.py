"""stage_changes indexed by (partner, stage) pair, so a period's stage counts are range seeks

Replaces the by-partner covering indexes of 0004 (partner, time, stage) with (partner, stage,
time): `kpi.aggregates` now counts each (partner, pipeline stage) pair with its own seek
instead of grouping every stage change of the period.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_NEW = {
    "ix_stage_changes_partner_stage_entered": ["partner_key", "stage", "entered_at"],
    "ix_stage_changes_partner_stage_left": ["partner_key", "stage", "left_at", "entered_at"],
}
_OLD = {
    "ix_stage_changes_partner_entered": ["partner_key", "entered_at", "stage"],
    "ix_stage_changes_partner_left": ["partner_key", "left_at", "stage", "entered_at"],
}


def upgrade() -> None:
    _replace(_OLD, _NEW)


def downgrade() -> None:
    _replace(_NEW, _OLD)


def _replace(drop: dict[str, list[str]], create: dict[str, list[str]]) -> None:
    for name in drop:
        op.drop_index(name, "stage_changes")
    for name, columns in create.items():
        op.create_index(name, "stage_changes", columns)

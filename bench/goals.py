"""Three goals for every partner of the KPI benchmark's store (kpi-spec.md section 9), so the
timed scorecards carry a Goals section as a real deployment's would: won revenue and deals won
for the quarter of the data's last day (both with a forecast from the open deals), and a close
rate for its year; and two program goals. Written straight into the store under the source
`bench` (replacing the previous run's), so a reused store file gets them too."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from sqlalchemy import delete, insert, select

from kpi import schema
from kpi.store import goal_key, open_store
from settings.goals import goal_period

SOURCE = "bench"


def ensure_goals(path: Path, as_of: date, seed: int) -> int:
    """Replaces the bench goals of the store at `path`; returns how many there are."""
    quarter = goal_period(f"{as_of.year}-Q{(as_of.month - 1) // 3 + 1}")
    year = goal_period(f"{as_of.year}")
    rng = random.Random(seed * 31 + 7)
    store = open_store(f"sqlite:///{path}")
    goals = schema.goals
    with store.engine.begin() as connection:
        partner_ids = sorted(connection.execute(select(schema.partners.c.id)).scalars())
        rows = []
        for pid in partner_ids:
            for kpi, period, target in (
                ("won_revenue", quarter, float(rng.randrange(50, 2000) * 1000)),
                ("deal_count", quarter, float(rng.randrange(5, 60))),
                ("close_rate", year, rng.randrange(20, 70) / 100),
            ):
                rows.append(_row(pid, kpi, period.name, period.start, period.end, target))
        rows.append(_row(None, "partner_revenue", year.name, year.start, year.end, 5e8))
        rows.append(_row(None, "partners_joined", year.name, year.start, year.end, 100.0))
        connection.execute(delete(goals).where(goals.c.source == SOURCE))
        connection.execute(insert(goals), rows)
    store.engine.dispose()
    return len(rows)


def _row(
    partner_id: str | None, kpi: str, period: str, start: date, end: date, target: float
) -> dict[str, object]:
    return {
        "id": f"{SOURCE}|{goal_key(partner_id, kpi, start, end)}",
        "partner_id": partner_id,
        "kpi": kpi,
        "period": period,
        "start_on": start,
        "end_on": end,
        "target": target,
        "direction": "at_least",
        "set_by": None,
        "set_at": None,
        "source": SOURCE,
        "row_hash": "",
    }

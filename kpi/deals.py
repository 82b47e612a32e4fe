"""The deals behind a partner's numbers: its largest won and lost deals of a period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from kpi import schema
from kpi.store import Store
from settings.periods import Period


@dataclass(frozen=True)
class DealLine:
    id: str
    name: str
    amount: float | None
    closed_on: date | None
    stage: str | None


def largest_deals(
    store: Store, partner_id: str, period: Period, status: str, limit: int = 5
) -> list[DealLine]:
    """The partner's `status` (won or lost) deals closed in the period, largest first."""
    d = schema.deals
    query = (
        select(d.c.id, d.c.name, d.c.amount, d.c.closed_on, d.c.stage)
        .where(
            d.c.partner_id == partner_id,
            d.c.status == status,
            d.c.closed_on >= period.start,
            d.c.closed_on < period.end,
        )
        .order_by(d.c.amount.is_(None), d.c.amount.desc(), d.c.id)
        .limit(limit)
    )
    with store.engine.connect() as connection:
        return [DealLine(*row) for row in connection.execute(query)]

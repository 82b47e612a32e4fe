"""A campaign's rounds, found from its schedule: a round is identified by its scheduled start
(UTC, `20261006T0700Z`), so every replica names the same round the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from settings.slack import SurveyCampaign


@dataclass(frozen=True)
class RoundTimes:
    campaign: str
    round_id: str
    started_at: datetime  # aware, UTC
    remind_at: datetime | None
    closes_at: datetime

    def open_at(self, now: datetime) -> bool:
        return self.started_at <= now < self.closes_at


def round_id_of(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def round_times(campaign: SurveyCampaign, start: datetime) -> RoundTimes:
    start = start.astimezone(UTC)
    remind = (
        start + timedelta(hours=campaign.remind_after_hours)
        if campaign.remind_after_hours is not None
        else None
    )
    return RoundTimes(
        campaign=campaign.name,
        round_id=round_id_of(start),
        started_at=start,
        remind_at=remind,
        closes_at=start + timedelta(hours=campaign.close_after_hours),
    )

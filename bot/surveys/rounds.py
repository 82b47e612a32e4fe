"""A campaign's rounds, found from its schedule: a round is identified by its scheduled start
(UTC, `20261006T0700Z`), so every replica names the same round the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.schedule import CronSchedule, cron_schedule
from settings.slack import SurveyCampaign

#: How far back a schedule's latest round is looked for, widening until one is found.
LOOKBACK = (timedelta(days=8), timedelta(days=40), timedelta(days=370), timedelta(days=740))


@dataclass(frozen=True)
class RoundTimes:
    campaign: str
    round_id: str
    started_at: datetime  # aware, UTC
    remind_at: datetime | None
    closes_at: datetime

    def open_at(self, now: datetime) -> bool:
        return self.started_at <= now < self.closes_at


def campaign_trigger(campaign: SurveyCampaign, default_zone: str) -> CronSchedule:
    return cron_schedule(campaign.schedule, campaign.timezone or default_zone)


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


def recent_starts(trigger: CronSchedule, now: datetime, count: int = 2) -> list[datetime]:
    """The schedule's latest `count` times up to `now`, newest first."""
    for window in LOOKBACK:
        fires: list[datetime] = []
        fire = trigger.get_next_fire_time(None, now - window)
        while fire is not None and fire <= now:
            fires.append(fire)
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
        if len(fires) >= count or window == LOOKBACK[-1]:
            return [f.astimezone(UTC) for f in reversed(fires[-count:])]
    return []


def next_start(trigger: CronSchedule, now: datetime) -> datetime | None:
    fire = trigger.get_next_fire_time(None, now)
    return fire.astimezone(UTC) if fire is not None else None

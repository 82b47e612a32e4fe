"""The one trigger of every cron schedule in app.yaml (digests, the sync, survey campaigns): an
APScheduler trigger that fires as crontab(5) would, built from settings/cron.py's parse.

APScheduler 3's own `CronTrigger.from_crontab` counts weekday 0 as Monday and ANDs day of month
with day of week; here each field is expanded by settings/cron.py and handed to plain CronTriggers
as explicit values (weekdays by name), and a schedule restricting both day fields is the union of a
day-of-month trigger and a day-of-week one. Across daylight-saving changes it behaves as cron
does: a time that does not exist that day (skipped by the clock) runs when the clock jumps past
it, and a fixed-hour time that occurs twice (the clock goes back) runs once; a `*` hour runs in
both passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from settings.cron import WEEKDAYS, CronSpec, parse_cron

_TICK = timedelta(microseconds=1)
_ORDINAL = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th"}


def _values(values: frozenset[int], full: range) -> str:
    return "*" if values == frozenset(full) else ",".join(str(v) for v in sorted(values))


class CronSchedule(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """A five-field cron schedule in one timezone, as an APScheduler trigger."""

    def __init__(self, spec: CronSpec, timezone: tzinfo) -> None:
        self.spec = spec
        self.timezone = timezone
        common = {
            "minute": _values(spec.minutes, range(60)),
            "hour": _values(spec.hours, range(24)),
            "month": _values(spec.months, range(1, 13)),
            "timezone": timezone,
        }
        days = _values(spec.days, range(1, 32))
        weekdays = ",".join(WEEKDAYS[day] for day in sorted(spec.weekdays))
        branches: list[dict[str, str]] = []
        if spec.either_day:
            branches += [{"day": days}, {"day_of_week": weekdays}]
        else:
            if spec.weekdays:
                branches.append({"day": days, "day_of_week": weekdays})
            if spec.nth_weekdays:
                nth = sorted(spec.nth_weekdays, key=lambda item: (item[1], (item[0] - 1) % 7))
                branches.append({"day": ",".join(f"{_ORDINAL[n]} {WEEKDAYS[d]}" for d, n in nth)})
        self.branches = [CronTrigger(**common, **branch) for branch in branches]

    def __str__(self) -> str:
        return f"cron[{self.spec.text}]"

    def __repr__(self) -> str:
        return f"<CronSchedule ({self.spec.text!r}, timezone={str(self.timezone)!r})>"

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first run at or after `now` (after `previous_fire_time` when given), in UTC: an
        aware local time plus a microsecond forgets which pass of a repeated hour it was in."""
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            start = min(start, previous_fire_time.astimezone(UTC) + _TICK)
        fires = [f for f in (self._branch_next(b, start) for b in self.branches) if f is not None]
        return min(fires) if fires else None

    def next_runs(self, now: datetime, count: int = 3) -> list[datetime]:
        """The next `count` runs at or after `now`, in the schedule's timezone."""
        runs: list[datetime] = []
        fire = self.get_next_fire_time(None, now)
        while fire is not None and len(runs) < count:
            runs.append(fire.astimezone(self.timezone))
            fire = self.get_next_fire_time(fire, fire + _TICK)
        return runs

    def _branch_next(self, branch: CronTrigger, start: datetime) -> datetime | None:
        moment = start
        while True:
            fire = branch.get_next_fire_time(None, moment)
            if fire is None:
                return None
            wall = fire.replace(tzinfo=None)
            first, second = self._instant(wall, 0), self._instant(wall, 1)
            if self._local(first) != wall:  # skipped by the clock: run when it jumps past
                jumped = self._gap_end(wall, second)
                if jumped >= start:
                    return jumped
                moment = fire.astimezone(UTC) + _TICK
                continue
            instant: datetime = fire.astimezone(UTC)
            if first == second or instant != second or self.spec.hour_star:
                return instant
            moment = instant + _TICK  # a fixed hour's second pass as the clock goes back

    def _instant(self, wall: datetime, fold: int) -> datetime:
        return wall.replace(tzinfo=self.timezone, fold=fold).astimezone(UTC)

    def _local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.timezone).replace(tzinfo=None)

    def _gap_end(self, wall: datetime, before: datetime) -> datetime:
        """The first whole minute at which the local clock reads later than `wall`, searching
        from `before` (an instant before the jump)."""
        instant = before.replace(second=0, microsecond=0)
        while self._local(instant) < wall:
            instant += timedelta(minutes=1)
        return instant


def cron_schedule(text: str, zone: str) -> CronSchedule:
    """The trigger of a schedule from app.yaml (already validated) in the IANA zone `zone`."""
    return CronSchedule(parse_cron(text), ZoneInfo(zone))

"""The one scheduler of a `partner-kpi serve` process, and what every kind of job shares: the
clock, the replica's name, the cron trigger of an app.yaml schedule and the look-back that finds
a schedule's latest runs.

A kind of job (digests in bot/scheduler.py, the sync in bot/sync_job.py, survey rounds in
bot/surveys/tick.py; alerts next) registers on `Jobs` with its cron schedules and an idempotent
`tick`. APScheduler only wakes a tick, at each schedule's times and, for a kind that catches up,
every `scheduler.tick_seconds` and once at start. What is due and whether it was done is found
from the send log (`Store.claim` / `mark_sent` / `reclaim_stale`, with bot/keyed_posts.py to
find a post a crashed replica made), never from APScheduler: each replica builds its own
BackgroundScheduler (APScheduler 3 must never share a job store), jobs run with coalesce and no
misfire grace limit, and however many replicas run, each run happens exactly once. Every notion
of "now" comes from an injectable clock, so tests move time by hand.

To add a kind (alerts, say): a class with `name`, `catch_up`, `schedules()` and `tick()` (see
`JobKind`), its runs keyed in the send log, registered in bot/serve_jobs.py.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.schedule import CronSchedule, cron_schedule

log = logging.getLogger("partner_kpi.scheduler")

Clock = Callable[[], datetime]
#: How far back a schedule's latest runs are looked for, widening until they are found.
LOOKBACK = (timedelta(days=8), timedelta(days=40), timedelta(days=370), timedelta(days=740))
_TICK = timedelta(microseconds=1)


def utc_now() -> datetime:
    """The real clock (aware, UTC)."""
    return datetime.now(UTC)


def replica_id() -> str:
    """This process's name in the send log's claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduled(Protocol):
    """What app.yaml schedules (a digest, a survey campaign, the sync)."""

    @property
    def schedule(self) -> str | None: ...

    @property
    def timezone(self) -> str | None: ...


def cron_trigger(item: Scheduled, default_zone: str) -> CronSchedule:
    """The trigger of `item`'s (validated) schedule, in its timezone or the app's."""
    return cron_schedule(item.schedule or "", item.timezone or default_zone)


def fires_within(trigger: CronSchedule, now: datetime, window: timedelta) -> list[datetime]:
    """The trigger's times in (now - window, now], oldest first, in UTC."""
    fires: list[datetime] = []
    fire = trigger.get_next_fire_time(None, now - window + _TICK)
    while fire is not None and fire <= now:
        fires.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, fire + _TICK)
    return fires


def latest_fire(trigger: CronSchedule, now: datetime, window: timedelta) -> datetime | None:
    """The trigger's latest time in (now - window, now], or None."""
    fires = fires_within(trigger, now, window)
    return fires[-1] if fires else None


def recent_fires(
    trigger: CronSchedule, now: datetime, count: int = 1, first: timedelta | None = None
) -> list[datetime]:
    """The trigger's latest `count` times up to `now`, newest first: looked for within `first`
    (cheap for frequent schedules), then in ever wider windows; fewer if the widest has fewer."""
    fires: list[datetime] = []
    for window in (first, *LOOKBACK) if first is not None else LOOKBACK:
        fires = fires_within(trigger, now, window)
        if len(fires) >= count:
            break
    return list(reversed(fires[-count:]))


def latest_scheduled(trigger: CronSchedule, now: datetime, grace: timedelta) -> datetime | None:
    """The latest scheduled time up to `now`, looked for within the grace time first."""
    found = recent_fires(trigger, now, 1, max(grace, timedelta(minutes=1)))
    return found[0] if found else None


def next_fire(trigger: CronSchedule, now: datetime) -> datetime | None:
    """The trigger's first time at or after `now`, in UTC."""
    fire = trigger.get_next_fire_time(None, now)
    return fire.astimezone(UTC) if fire is not None else None


@dataclass(frozen=True)
class Schedule:
    """One cron schedule of a kind of job: `id` names it in `partner-kpi jobs`."""

    id: str
    what: str
    text: str
    trigger: CronSchedule

    @classmethod
    def of(cls, id: str, what: str, item: Scheduled, trigger: CronSchedule) -> Schedule:
        """The schedule of `item` (a digest, a campaign, the sync) with its trigger."""
        return cls(id, what, item.schedule or "", trigger)


@dataclass(frozen=True)
class JobInfo:
    id: str
    what: str
    schedule: str
    timezone: str
    next_runs: tuple[datetime, ...]  # in the schedule's timezone

    @property
    def next_run(self) -> datetime | None:
        return self.next_runs[0] if self.next_runs else None

    @classmethod
    def of(cls, schedule: Schedule, now: datetime) -> JobInfo:
        """A job run by a cron schedule, with its next three runs from now."""
        trigger = schedule.trigger
        return cls(
            schedule.id,
            schedule.what,
            schedule.text,
            str(trigger.timezone),
            tuple(trigger.next_runs(now)),
        )


class JobKind(Protocol):
    """A kind of job on the one scheduler."""

    @property
    def name(self) -> str:
        """Its name in the log and in its catch-up job's id ("digest", "sync", "survey")."""
        ...

    @property
    def catch_up(self) -> bool:
        """Ticked every `tick_seconds` and at start too (to find missed runs), not only on its
        schedules."""
        ...

    def schedules(self) -> list[Schedule]:
        """Its cron schedules; each wakes `tick`."""
        ...

    def tick(self) -> object:
        """Does what is due and not yet done; safe at any time, from any number of replicas."""
        ...


class Jobs:
    """The one BackgroundScheduler of a process, with the kinds of job registered on it."""

    def __init__(
        self,
        tick_seconds: float,
        kinds: Iterable[JobKind] = (),
        *,
        clock: Clock = utc_now,
        replica: str | None = None,
    ) -> None:
        self.tick_seconds = tick_seconds
        self.kinds: list[JobKind] = list(kinds)
        self.clock = clock
        self.replica = replica or replica_id()
        self._scheduler: BackgroundScheduler | None = None

    def add(self, kind: JobKind) -> None:
        self.kinds.append(kind)

    def listing(self) -> list[JobInfo]:
        """Every scheduled job with its next three runs (`partner-kpi jobs`)."""
        now = self.clock()
        return [JobInfo.of(schedule, now) for kind in self.kinds for schedule in kind.schedules()]

    def start(self) -> BackgroundScheduler:
        """Starts the scheduler; the kinds that catch up tick at once."""
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for kind in self.kinds:
            run = self._runner(kind)
            if kind.catch_up:
                scheduler.add_job(
                    run,
                    IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
                    id=f"{kind.name}:catch-up",
                    name=f"{kind.name} catch-up",
                    next_run_time=datetime.now(UTC),  # at start: find missed runs in the send log
                )
            for schedule in kind.schedules():
                scheduler.add_job(run, schedule.trigger, id=schedule.id, name=schedule.what)
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "scheduler started (%s): %s",
            self.replica,
            ", ".join(f"{len(k.schedules())} {k.name} schedule(s)" for k in self.kinds) or "idle",
        )
        return scheduler

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
            log.info("scheduler stopped (%s)", self.replica)

    @staticmethod
    def _runner(kind: JobKind) -> Callable[[], None]:
        def run() -> None:
            try:
                kind.tick()
            except Exception:  # the database may be away for a while; the next tick tries again
                log.exception("%s tick failed", kind.name)

        return run

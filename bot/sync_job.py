"""The scheduled sync as a kind of job: on `scheduler.sync.schedule`, run by the one replica
that claims the run (`sync:<scheduled time>` in the send log), and on demand before a digest
whose data is too old. A failed sync is logged, never raised: the digest then says so."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from bot.jobs import Clock, Schedule, cron_trigger, latest_fire, utc_now
from kpi.store import Store
from settings.app import AppConfig

log = logging.getLogger("partner_kpi.scheduler")

SyncRunner = Callable[[], object]
#: A scheduled sync found later than this after its time is left to the next one.
LATE = timedelta(minutes=30)


@dataclass
class SyncJob:
    """The sync of one replica: `runner` syncs the configured source."""

    store: Store
    app: AppConfig
    runner: SyncRunner
    clock: Clock = utc_now
    replica: str = "sync"
    #: Run after each sync this replica makes (the alerts' check), whatever its outcome.
    after: Callable[[], object] | None = None
    name: ClassVar[str] = "sync"
    catch_up: ClassVar[bool] = False

    def __post_init__(self) -> None:
        settings = self.app.scheduler
        self.grace = timedelta(hours=settings.grace_hours)
        self.trigger = (
            cron_trigger(settings.sync, self.app.timezone) if settings.sync.schedule else None
        )

    def schedules(self) -> list[Schedule]:
        if self.trigger is None:
            return []
        return [
            Schedule.of("sync", f"sync {self.app.source}", self.app.scheduler.sync, self.trigger)
        ]

    def run(self, why: str) -> None:
        """Syncs now; a failure is logged."""
        try:
            self.runner()
        except Exception as error:  # the digest then warns that the last sync failed
            log.error("sync %s failed: %s", why, error)
        if self.after is not None:
            try:
                self.after()
            except Exception:  # the next tick tries again
                log.exception("the check after the sync failed")

    def run_if_older(self, minutes: float, now: datetime) -> None:
        """Syncs first when the data is older than `minutes` (0: never)."""
        if minutes <= 0:
            return
        good = self.store.data_as_of()
        if good is not None and now - good < timedelta(minutes=minutes):
            return
        self.run("before a digest")

    def tick(self) -> bool:
        """The scheduled sync: run by the one replica that claims this run. True if it ran."""
        if self.trigger is None:
            return False
        now = self.clock()
        scheduled = latest_fire(self.trigger, now, max(self.grace, timedelta(minutes=1)))
        if scheduled is None or now - scheduled > LATE:
            return False
        key = f"sync:{scheduled.isoformat()}"
        if not self.store.claim(key, "sync", self.replica):
            return False
        self.run("on schedule")
        self.store.mark_sent(key, None)
        return True

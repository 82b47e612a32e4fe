"""The survey job of `partner-kpi serve`: every `scheduler.tick_seconds`, and at each campaign's
scheduled start, one idempotent tick sends the due round, its reminder and the close."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient

from bot.scheduler import JobInfo, replica_id
from bot.surveys.rounds import campaign_trigger
from bot.surveys.sender import SurveySender
from kpi.store import Store
from settings.app import LoadedConfig

log = logging.getLogger("partner_kpi.surveys")


def survey_jobs(config: LoadedConfig, now: datetime) -> list[JobInfo]:
    """Each campaign's job, with the start of its next round (for `partner-kpi jobs`)."""
    return [
        JobInfo.of(
            f"survey:{campaign.name}",
            f"survey {campaign.name} round (results to {campaign.results_channel})",
            campaign.schedule,
            campaign_trigger(campaign, config.app.timezone),
            now,
        )
        for campaign in config.app.surveys
    ]


def start_survey_jobs(
    store: Store, config: LoadedConfig, client: WebClient, replica: str | None = None
) -> BackgroundScheduler | None:
    """This replica's survey scheduler (None when app.yaml has no campaigns)."""
    app = config.app
    if not app.surveys:
        return None

    sender = SurveySender(store, config, client, replica=replica or replica_id())

    def safe_tick() -> None:
        try:
            sender.tick()
        except Exception:  # the database may be away for a while; the next tick tries again
            log.exception("survey tick failed")

    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    scheduler.add_job(
        safe_tick,
        IntervalTrigger(seconds=app.scheduler.tick_seconds, timezone=UTC),
        id="survey-tick",
        next_run_time=datetime.now(UTC),
    )
    for campaign in app.surveys:
        scheduler.add_job(
            safe_tick, campaign_trigger(campaign, app.timezone), id=f"survey:{campaign.name}"
        )
    scheduler.start()
    log.info("survey scheduler started: %d campaign(s)", len(app.surveys))
    return scheduler

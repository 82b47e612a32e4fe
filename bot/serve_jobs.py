"""The jobs of one `partner-kpi serve` process, each kind registered on the one scheduler
(bot/jobs.py), in the order `partner-kpi jobs` lists them. Alerts run after every sync."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.alerts.job import AlertJob
from bot.jobs import Jobs, replica_id
from bot.scheduler import DigestScheduler
from bot.surveys.sender import SurveySender
from bot.surveys.tick import SurveyJobs
from bot.sync_job import SyncJob
from connectors.sync import run_sync, source_for
from kpi.image_warmup import warm_images
from kpi.store import Store
from settings.app import LoadedConfig


def process_jobs(store: Store, config: LoadedConfig, client: WebClient | None) -> Jobs:
    """Digests, the sync, survey rounds and alerts of this replica; with no Slack client, only to be
    listed (nothing is sent)."""
    app = config.app
    replica = replica_id()

    def sync() -> object:
        report = run_sync(store, source_for(config))
        warm_images(store)  # the first digest or Home view after it does not pay the loads
        return report

    alerts = AlertJob(store, app, client, replica=replica)
    sync_job = SyncJob(store, app, sync, replica=replica, after=alerts.tick)
    digests = DigestScheduler(store, config, client, sync=sync_job, replica=replica)
    surveys = None
    if client is not None and app.surveys:
        surveys = SurveySender(store, config, client, replica=replica)
    return Jobs(
        app.scheduler.tick_seconds,
        [digests, sync_job, SurveyJobs(app, surveys), alerts],
        clock=digests.clock,
        replica=replica,
    )


def start_jobs(store: Store, config: LoadedConfig, client: WebClient) -> Jobs:
    """The one scheduler of `partner-kpi serve`, started: it catches up at once."""
    jobs = process_jobs(store, config, client)
    jobs.start()
    return jobs

"""Survey rounds as a kind of job on the one scheduler (bot/jobs.py): every
`scheduler.tick_seconds`, and at each campaign's scheduled start, one idempotent tick sends the
due round, its reminder and the close (bot/surveys/sender.py)."""

from __future__ import annotations

from bot.jobs import Schedule, cron_trigger
from bot.surveys.sender import SurveySender
from settings.app import AppConfig


class SurveyJobs:
    """Every campaign's rounds; without a sender (listing only) the tick does nothing."""

    name = "survey"
    catch_up = True

    def __init__(self, app: AppConfig, sender: SurveySender | None = None) -> None:
        self.app = app
        self.sender = sender

    def schedules(self) -> list[Schedule]:
        return [
            Schedule.of(
                f"survey:{c.name}",
                f"survey {c.name} round (results to {c.results_channel})",
                c,
                cron_trigger(c, self.app.timezone),
            )
            for c in self.app.surveys
        ]

    def tick(self) -> list[str]:
        return self.sender.tick() if self.sender is not None else []

"""The Slack side of app.yaml: the Slack app, who may use it (access), the digests, the
scheduler inside `serve`, and the survey campaigns.

A survey campaign runs in rounds. A round starts at each time of `schedule` (cron in
`timezone`), its one reminder goes out `remind_after_hours` later to those who have not
answered, and it closes `close_after_hours` after its start; the results channel then gets the
summary.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from settings.base import CronSchedule, Section, TimezoneName, named_once

DEFAULT_QUESTION = "How likely are you to recommend partnering with us to a peer?"
DEFAULT_COMMENT_PROMPT = "Anything you'd like to tell us? (optional)"


class SurveyAudience(Section):
    """Whose contacts are asked: every partner (the default), or those of the given tiers
    (ignoring case) or CRM ids; with both lists a partner in either is asked. Partners that have
    left the program are never asked."""

    all: bool = False
    tiers: list[str] = Field(default_factory=list)
    partners: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.all and (self.tiers or self.partners):
            raise ValueError("use either all: true or tiers/partners, not both")
        if not self.all and not (self.tiers or self.partners):
            self.all = True
        return self


class SurveyCampaign(Section):
    """One survey campaign, e.g. the quarterly partner NPS on the first Tuesday of a quarter:
    `schedule: "0 9 * 1,4,7,10 tue#1"` (`tue#1`: the month's first Tuesday)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    schedule: CronSchedule
    timezone: TimezoneName | None = None  # default: app.yaml's
    audience: SurveyAudience = Field(default_factory=SurveyAudience)
    question: str = Field(default=DEFAULT_QUESTION, min_length=1, max_length=300)
    # The optional follow-up comment: a button that opens a modal; null turns it off.
    comment: str | None = Field(default=DEFAULT_COMMENT_PROMPT, min_length=1, max_length=150)
    remind_after_hours: float | None = Field(default=72.0, gt=0)
    close_after_hours: float = Field(default=168.0, gt=0)
    anonymous: bool = False
    results_channel: str = Field(min_length=2, max_length=80)

    @model_validator(mode="after")
    def _reminder_before_close(self) -> Self:
        if (
            self.remind_after_hours is not None
            and self.remind_after_hours >= self.close_after_hours
        ):
            raise ValueError(
                f"remind_after_hours ({self.remind_after_hours:g}) must be less than "
                f"close_after_hours ({self.close_after_hours:g}), or the reminder never goes out"
            )
        return self


class SlackConfig(Section):
    command: str = "/partner-kpi"
    app_name: str = "partner-kpi"
    port: int = Field(default=3000, ge=1, le=65535)
    path: str = "/slack/events"
    # The public URL Slack sends requests to (HTTP mode), for the app manifest.
    request_url: str | None = None
    # How long one Web API call may take before it counts as failed (a refusal, for access).
    api_timeout_seconds: int = Field(default=10, ge=1, le=120)
    # Socket Mode: /health answers 503 once no connection has been open for this long.
    socket_down_seconds: float = Field(default=60, gt=0)
    # serve: how long Slack may stay unreachable after the start (auth.test) before serve exits.
    startup_timeout_seconds: float = Field(default=300, gt=0)

    @field_validator("command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/") or " " in value:
            raise ValueError("a slash command starts with / and has no spaces, e.g. /partner-kpi")
        return value


class ExternalAccessConfig(Section):
    """Slack Connect users (partners): each sees at most its own partner's scorecard."""

    # email domain -> partner CRM id
    domains: dict[str, str] = Field(default_factory=dict)
    # Slack user id or email -> partner CRM id
    users: dict[str, str] = Field(default_factory=dict)
    # Slack channel id shared with a partner's organisation (Slack Connect) -> that partner's
    # CRM id: the only partner whose data may be posted there (shares, digests, results).
    channels: dict[str, str] = Field(default_factory=dict)
    # Whether a partner's people see their rank among the program's partners.
    show_rank: bool = False

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for channel in value:
            if not (channel[:1] in ("C", "G") and channel.isalnum() and channel.isupper()):
                raise ValueError(
                    f"{channel!r} is not a channel id such as C0123ABCDEF (Slack shows it in "
                    "the channel's details)"
                )
        return value


class GoalSettersConfig(Section):
    """The managers who may set and clear goals from Slack: Slack user ids and user groups.
    Nobody when both are empty; never an external user."""

    users: list[str] = Field(default_factory=list)
    usergroups: list[str] = Field(default_factory=list)


class AccessConfig(Section):
    """Who may use the command. With no users, user groups or channels, every member of the
    workspace may; external users are limited by `external` either way."""

    users: list[str] = Field(default_factory=list)
    usergroups: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    external: ExternalAccessConfig = Field(default_factory=ExternalAccessConfig)
    goal_setters: GoalSettersConfig = Field(default_factory=GoalSettersConfig)


class SyncScheduleConfig(Section):
    """When the scheduler syncs the source: on `schedule` (cron; null: never) and before a
    digest whose data is older than `before_digest_minutes`."""

    schedule: CronSchedule | None = "0 * * * *"
    timezone: TimezoneName | None = None
    before_digest_minutes: float = Field(default=30.0, ge=0)


class SchedulerConfig(Section):
    """The scheduler inside `partner-kpi serve`: digests missed by less than `grace_hours` are
    caught up once; a claim never posted is retried after `stale_claim_minutes`."""

    sync: SyncScheduleConfig = Field(default_factory=SyncScheduleConfig)
    grace_hours: float = Field(default=6.0, ge=0)
    stale_claim_minutes: float = Field(default=15.0, ge=1)
    tick_seconds: float = Field(default=60.0, ge=1)


Surveys = Annotated[list[SurveyCampaign], AfterValidator(named_once("surveys"))]

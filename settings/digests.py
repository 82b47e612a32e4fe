"""What a digest shows and where it goes: its partners, sections, period and risk rules, read
by the KPI core (kpi/digest_data.py) as well as by the scheduler, so apart from the Slack
sections of settings/slack.py."""

from __future__ import annotations

import typing
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from settings.base import CronSchedule, PeriodText, Section, TimezoneName, named_once

#: What a digest can show, in the order it shows them.
DigestSection = Literal["program", "leaderboard", "movers", "at_risk", "joined_left", "chart"]
DIGEST_SECTIONS: tuple[DigestSection, ...] = typing.get_args(DigestSection)


class DigestPartnerFilter(Section):
    """Which partners a digest covers; with several lists a partner must match each of them.
    Tiers, owners and regions match ignoring case; `ids` are CRM ids."""

    tiers: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    ids: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.tiers or self.owners or self.regions or self.ids)


class DigestRiskRules(Section):
    """When a partner is at risk (kpi.risk.RiskRules, with `no_win_days` in place of "no deal
    won in the period", which a weekly digest would say of most partners)."""

    no_win_days: int = Field(default=90, ge=1)
    close_rate_drop_points: float = Field(default=15.0, ge=0, le=100)
    detractor_nps: float = Field(default=0.0, ge=-100, le=100)
    stale_pipeline_share: float = Field(default=0.5, ge=0, le=1)
    customers_lost: int = Field(default=2, ge=1)  # lost at least this many, more than gained


class DigestConfig(Section):
    """A digest posted to a channel on a cron schedule, e.g. Mondays 09:00 Europe/Berlin."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    channel: str = Field(min_length=2, max_length=80)
    schedule: CronSchedule
    timezone: TimezoneName | None = None  # default: app.yaml's timezone
    period: PeriodText = "last-7d"
    title: str | None = Field(default=None, max_length=100)
    partners: DigestPartnerFilter = Field(default_factory=DigestPartnerFilter)
    sections: list[DigestSection] = Field(default_factory=lambda: list(DIGEST_SECTIONS))
    top: int = Field(default=10, ge=1, le=25)
    movers: int = Field(default=5, ge=1, le=10)
    at_risk: DigestRiskRules = Field(default_factory=DigestRiskRules)
    # Warn when the data is older than this; default: a day for a period of up to a week,
    # else a seventh of the period (a monthly digest accepts 4 days).
    max_data_age_hours: float | None = Field(default=None, gt=0)
    # Program KPIs and leaders also compared with the average of the stored snapshots of the
    # same period over this many trailing quarters (0: only with the previous period).
    trailing_quarters: int = Field(default=4, ge=0, le=12)

    @field_validator("sections")
    @classmethod
    def _some_sections(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"name at least one section of {', '.join(DIGEST_SECTIONS)}")
        if len(set(value)) != len(value):
            raise ValueError("a section is listed twice")
        return value


Digests = Annotated[list[DigestConfig], AfterValidator(named_once("digests"))]

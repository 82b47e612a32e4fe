"""Survey campaigns in app.yaml (`surveys:`): who is asked, when, what, and where the results go.

A campaign runs in rounds. A round starts at each time of `schedule` (cron in `timezone`), its
one reminder goes out `remind_after_hours` later to those who have not answered, and it closes
`close_after_hours` after its start; the results channel then gets the summary.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

DEFAULT_QUESTION = "How likely are you to recommend partnering with us to a peer?"
DEFAULT_COMMENT_PROMPT = "Anything you'd like to tell us? (optional)"


def _crontab(value: str) -> str:
    from kpi.config import _crontab as check

    return check(value)


def _timezone(value: str) -> str:
    from kpi.config import _iana_timezone as check

    return check(value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unknown_key_noun: ClassVar[str] = "field"


class SurveyAudience(_Section):
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


class SurveyCampaign(_Section):
    """One survey campaign, e.g. the quarterly partner NPS on the first Tuesday of a quarter:
    `schedule: "0 9 * 1,4,7,10 tue#1"` (`tue#1`: the month's first Tuesday)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    schedule: Annotated[str, AfterValidator(_crontab)]
    timezone: Annotated[str, AfterValidator(_timezone)] | None = None  # default: app.yaml's
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


def distinct_campaigns(campaigns: list[SurveyCampaign]) -> list[SurveyCampaign]:
    names = [campaign.name.casefold() for campaign in campaigns]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"two surveys are named {twice[0]!r}; give each its own name")
    return campaigns

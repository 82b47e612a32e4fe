"""The normalized, CRM-independent records of kpi-spec.md section 1.

Connectors turn CRM rows into these; the store keeps them; KPI code reads nothing else.
Amounts on a `Deal` are already converted into the deployment's currency; `original_amount`
and `currency` keep what the CRM said, so a deal whose currency has no rate is visible
(`original_amount` set, `amount` null).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from settings.vocab import Channel as Channel  # app.yaml's words, re-exported
from settings.vocab import DealType as DealType


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Record(BaseModel):
    """Base of every normalized record: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


NonEmpty = Annotated[str, Field(min_length=1)]


class Partner(Record):
    id: NonEmpty
    name: NonEmpty
    tier: str | None = None
    joined_on: date
    left_on: date | None = None
    owner_email: str | None = None
    contact_emails: tuple[str, ...] = ()
    region: str | None = None  # beyond the spec's fields: what a digest may filter by


class Deal(Record):
    id: NonEmpty
    partner_id: str | None = None
    name: str = ""
    amount: Decimal | None = None
    original_amount: Decimal | None = None
    currency: str | None = None
    stage: str | None = None
    status: DealStatus
    created_on: date
    closed_on: date | None = None
    expected_close_on: date | None = None
    type: DealType | None = None
    lead_source: str | None = None
    channel: Channel = Channel.OTHER
    registered: bool = False
    registered_on: date | None = None
    csat: Annotated[int, Field(ge=1, le=5)] | None = None

    @field_validator("closed_on")
    @classmethod
    def _closed_deals_have_a_close_date(cls, value: date | None, info: object) -> date | None:
        data = getattr(info, "data", {})
        if value is None and data.get("status") in (DealStatus.WON, DealStatus.LOST):
            raise ValueError("a won or lost deal needs a close date")
        return value


class StageChange(Record):
    deal_id: NonEmpty
    stage: NonEmpty
    entered_at: datetime  # timezone-aware; the store keeps it as naive UTC


class TrainingCompletion(Record):
    """One person's completion of a course. A completion has no id, so identical rows are
    separate completions: `occurrence` numbers them (1, 2, …) within their partner, course
    and date, so the store keeps every one (kpi-spec.md section 3, `courses_completed`)."""

    partner_id: NonEmpty
    course: NonEmpty
    completed_on: date
    occurrence: Annotated[int, Field(ge=1)] = 1


class SurveyResponse(Record):
    id: NonEmpty
    partner_id: NonEmpty
    respondent: str | None = None
    campaign_id: str | None = None
    score: Annotated[int, Field(ge=0, le=10)]
    comment: str | None = None
    submitted_at: datetime  # timezone-aware


class Customer(Record):
    """A partner's customer (kpi-spec.md section 7); `mrr` is converted like a deal's amount."""

    id: NonEmpty
    partner_id: str | None = None  # null = a direct customer
    name: str = ""
    became_customer_on: date
    churned_on: date | None = None
    mrr: Decimal | None = None
    original_mrr: Decimal | None = None  # as the source has it, in `currency`
    currency: str | None = None
    onboarded_on: date | None = None
    referred_by: str | None = None  # the id of the customer that referred this one


class SupportTicket(Record):
    id: NonEmpty
    customer_id: NonEmpty
    opened_at: datetime  # timezone-aware; the store keeps it as naive UTC

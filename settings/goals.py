"""The rules of a goal (kpi-spec.md section 9), shared by goals.csv, app.yaml `goals:` and goals
set in Slack, so that the three sources accept and refuse exactly the same things.

A goal names a numeric KPI key (the program-only keys of section 5 only for the program), a
*fixed* period (one that does not move with the as-of date), a finite target (not negative for
the additive keys) and a direction, whose empty value is `at_most` where less is better.
`parse_amount` reads a target as people type it in Slack (`500k`, `1.2M`, `$500,000`, `45%`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from pydantic import PrivateAttr, field_validator, model_validator

from settings.base import Section
from settings.periods import Period, PeriodError, parse_period
from settings.vocab import PARTNER_KPI_KEYS, PROGRAM_ONLY_KPI_KEYS


class Direction(StrEnum):
    AT_LEAST = "at_least"
    AT_MOST = "at_most"


#: Sums and counts: they only grow through a period, so they have a pace and a projection.
ADDITIVE_KPIS = frozenset(
    {
        "deal_count",
        "won_revenue",
        "net_new_revenue",
        "registered_deals",
        "courses_completed",
        "survey_responses",
        "customers_gained",
        "customers_lost",
        "referrals",
        "partners_joined",
        "partners_left",
        "partner_revenue",
    }
)
#: Where less is better, so an empty direction means `at_most`.
AT_MOST_BY_DEFAULT = frozenset(
    {
        "sales_cycle_days",
        "onboarding_days",
        "customers_lost",
        "tickets_per_customer",
        "partners_left",
    }
)
#: Money keys (a target typed in Slack may carry a currency sign).
MONEY_KPIS = frozenset(
    {
        "won_revenue",
        "avg_deal_size",
        "pipeline_value",
        "sales_velocity",
        "net_new_revenue",
        "mrr_active",
        "partner_revenue",
    }
)
#: Ratios (fractions; `45%` is 0.45).
RATIO_KPIS = frozenset(
    {
        "close_rate",
        "deal_success",
        "upsell_rate",
        "portfolio_growth",
        "account_retention",
        "mrr_retention",
        "partner_revenue_share",
    }
)
#: Forecast and coverage are computed for a partner's `at_least` goal on these.
FORECAST_KPIS = frozenset({"deal_count", "won_revenue"})

# Two as-of dates far apart: a period that names the same range from both does not move.
_PROBES = (date(2001, 2, 15), date(2098, 8, 20))


class GoalError(ValueError):
    """One rule a goal breaks; the message names the field and what is wrong."""


@dataclass(frozen=True)
class GoalFields:
    """A goal's checked fields (the partner is resolved by the caller that knows partners)."""

    kpi: str
    period: Period  # its `name` is the text as written, stripped
    target: Decimal
    direction: Direction


def goal_kpi(text: str, for_program: bool) -> str:
    key = text.strip().lower()
    if key in PROGRAM_ONLY_KPI_KEYS and not for_program:
        raise GoalError(f"kpi {text!r} is a program KPI; leave the partner empty for it")
    if key not in PARTNER_KPI_KEYS and key not in PROGRAM_ONLY_KPI_KEYS:
        raise GoalError(f"kpi {text!r} is not a numeric KPI key such as won_revenue or deal_count")
    return key


def goal_period(text: str) -> Period:
    """A fixed period (`2026-Q4`, `2026-11`, `2026`, `A..B`), named as written."""
    written = text.strip()
    try:
        first, second = (parse_period(written, probe) for probe in _PROBES)
    except PeriodError:
        raise GoalError(
            f"period {text!r} is not a period; use 2026-Q4, 2026-11, 2026 or 2026-10-01..2026-12-31"
        ) from None
    if (first.start, first.end) != (second.start, second.end):
        raise GoalError(
            f"period {text!r} moves with the date; use a fixed one such as 2026-Q4, 2026-11, "
            "2026 or 2026-10-01..2026-12-31"
        )
    return Period(written, first.start, first.end, first.unit)


def goal_target_number(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise GoalError(f"target {value} is not a finite number")
    return value


def goal_target(value: Decimal, kpi: str) -> Decimal:
    if not value.is_finite():
        raise GoalError(f"target {value} is not a finite number")
    if value < 0 and kpi in ADDITIVE_KPIS:
        raise GoalError(f"target {value} is negative; {kpi} cannot be below 0")
    return value


def goal_direction(text: str | None, kpi: str) -> Direction:
    cleaned = (text or "").strip().lower()
    if not cleaned:
        return Direction.AT_MOST if kpi in AT_MOST_BY_DEFAULT else Direction.AT_LEAST
    try:
        return Direction(cleaned)
    except ValueError:
        raise GoalError(f"direction {text!r} is not at_least or at_most") from None


def goal_fields(
    kpi: str, period: str, target: Decimal, direction: str | None, for_program: bool
) -> GoalFields:
    """Checks one goal's fields in the spec's order; raises GoalError on the first fault."""
    key = goal_kpi(kpi, for_program)
    return GoalFields(
        kpi=key,
        period=goal_period(period),
        target=goal_target(target, key),
        direction=goal_direction(direction, key),
    )


def plain_number(text: str) -> Decimal:
    """A plain decimal number as a CSV cell or app.yaml holds it."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise GoalError(f"target {text!r} is not a number") from None
    if not number.is_finite():
        raise GoalError(f"target {text!r} is not a finite number")
    return number


_AMOUNT = re.compile(
    r"(?P<sign>-)?\s*(?P<currency>[$€£])?\s*(?P<number>\d[\d,]*(?:\.\d+)?|\.\d+)\s*"
    r"(?P<suffix>[kmb%])?",
    re.IGNORECASE,
)
_SCALE = {"k": Decimal(1000), "m": Decimal(1000000), "b": Decimal(1000000000)}


def parse_amount(text: str, kpi: str) -> Decimal:
    """A target as people type it: `500k`, `1.2M`, `$500,000`, `45%` (a ratio, as 0.45), `12`.

    A percent sign only for ratio keys, a currency sign only for money keys, and thousands
    commas only in groups of three, so a typo is refused rather than misread."""
    cleaned = text.strip()
    match = _AMOUNT.fullmatch(cleaned)
    if match is None or not _grouped(match["number"]):
        raise GoalError(f"{text!r} is not an amount; write it like 500k, 1.2M, $500,000 or 45%")
    number = Decimal(match["number"].replace(",", ""))
    suffix = (match["suffix"] or "").lower()
    if suffix == "%":
        if kpi not in RATIO_KPIS:
            raise GoalError(f"{text!r} is a percentage, but {kpi} is not a ratio")
        number = number / 100
    elif suffix:
        number *= _SCALE[suffix]
    if match["currency"] and kpi not in MONEY_KPIS:
        raise GoalError(f"{text!r} is money, but {kpi} is not an amount of money")
    return -number if match["sign"] else number


def _grouped(number: str) -> bool:
    whole = number.split(".")[0]
    if "," not in whole:
        return True
    head, *groups = whole.split(",")
    return 1 <= len(head) <= 3 and all(len(group) == 3 for group in groups)


class GoalEntry(Section):
    """One app.yaml `goals:` entry; `partner` is an id or an exact name (ignoring case),
    resolved against the store's partners when goals are read; neither is the program."""

    partner: str | None = None
    partner_id: str | None = None
    kpi: str
    period: str
    target: Decimal | str
    direction: str | None = None
    _fields: GoalFields | None = PrivateAttr(default=None)

    @field_validator("target", mode="before")
    @classmethod
    def _a_number_or_typed_amount(cls, value: object) -> object:
        """A YAML number as a Decimal (checked finite); text is read by `parse_amount`
        once the KPI is known (`500k`, `45%`)."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise GoalError(f"target {value!r} is not a number")
        if isinstance(value, int | float):
            return goal_target_number(Decimal(str(value)))
        return value

    @field_validator("period", "partner", "partner_id", mode="before")
    @classmethod
    def _year_as_text(cls, value: object) -> object:
        """YAML reads `period: 2026` (or an id of digits) as a number."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _follows_the_rules(self) -> GoalEntry:
        if self.partner is not None and self.partner_id is not None:
            raise ValueError("give either partner or partner_id, not both")
        for_program = not (self.partner or "").strip() and not (self.partner_id or "").strip()
        target = self.target
        key = self.kpi.strip().lower()
        number = parse_amount(target, key) if isinstance(target, str) else target
        fields = goal_fields(self.kpi, self.period, number, self.direction, for_program)
        self._fields = fields
        return self

    @property
    def fields(self) -> GoalFields:
        assert self._fields is not None  # set by the validator
        return self._fields

    @property
    def partner_ref(self) -> str | None:
        """The partner as written (an id or a name); None for the program."""
        text = (self.partner_id or self.partner or "").strip()
        return text or None

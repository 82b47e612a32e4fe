"""app.yaml's `alerts:`: rules that post to a channel when a number crosses a line, checked
after every sync (bot/alerts/).

A rule watches one of three things:

- a numeric KPI (`kpi: won_revenue`), of every active partner (`scope: partners`) or of the
  program, over `period`: `below` / `above` a threshold in the KPI's unit, or `down_percent` /
  `up_percent` against the previous period by at least `threshold` percent;
- `kpi: tier` with `comparison: changed`: a partner's earned tier (kpi.tiers) is not the one
  last seen;
- `kpi: sync` with `comparison: failed`: the last sync was refused by the deletion guard, or the
  last `threshold` syncs (default 2) all failed;
- `kpi: goal_status` with `comparison: changed`: a current goal's status (kpi-spec.md section 9)
  is not the one last seen, for the partners' goals (`scope: partners`) or the program's; with
  `statuses: [behind, at_risk]`, only a change to one of those is posted.

Each error names the rule's field: `alerts[1].threshold: ...`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from settings.base import PeriodText, Section, named_once
from settings.vocab import PARTNER_KPI_KEYS, PROGRAM_ONLY_KPI_KEYS

Comparison = Literal["below", "above", "down_percent", "up_percent", "changed", "failed"]
#: What `kpi` may name besides a numeric KPI, with the one comparison each takes.
EVENT_KPIS = {"tier": "changed", "sync": "failed", "goal_status": "changed"}
#: A goal's statuses (kpi-spec.md section 9), which a goal_status rule's `statuses` may name.
GoalStatus = Literal["not_started", "no_data", "met", "missed", "on_track", "behind", "at_risk"]
NUMERIC_COMPARISONS = ("below", "above", "down_percent", "up_percent")
DEFAULT_SYNC_FAILURES = 2


class AlertRule(Section):
    """One rule, e.g. won_revenue of last-90d down 30% against the previous period."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    channel: str = Field(min_length=2, max_length=80)
    scope: Literal["partners", "program"] = "partners"
    kpi: str
    comparison: Comparison
    threshold: float | None = Field(default=None, validate_default=True)
    period: PeriodText = "last-90d"
    statuses: list[GoalStatus] | None = Field(default=None, min_length=1)

    @field_validator("kpi")
    @classmethod
    def _known_kpi(cls, value: str, info: ValidationInfo) -> str:
        key = value.strip().lower()
        program = info.data.get("scope") == "program"
        allowed = PARTNER_KPI_KEYS + (PROGRAM_ONLY_KPI_KEYS if program else ())
        if key in allowed or key in EVENT_KPIS:
            if program and key == "tier":
                raise ValueError("a tier belongs to a partner; use scope: partners")
            return key
        hint = "" if program or key not in PROGRAM_ONLY_KPI_KEYS else " (with scope: program)"
        if hint:
            raise ValueError(f"{key!r} is a KPI of the program only{hint}")
        raise ValueError(
            f"unknown KPI {value!r}; expected one of {', '.join(allowed)}, "
            "or tier, sync or goal_status"
        )

    @field_validator("comparison")
    @classmethod
    def _fits_kpi(cls, value: str, info: ValidationInfo) -> str:
        kpi = info.data.get("kpi")
        if kpi is None:  # the KPI is wrong already; that error says so
            return value
        if kpi in EVENT_KPIS and value != EVENT_KPIS[kpi]:
            raise ValueError(f"kpi {kpi} takes comparison {EVENT_KPIS[kpi]}, not {value!r}")
        if kpi not in EVENT_KPIS and value not in NUMERIC_COMPARISONS:
            raise ValueError(
                f"a KPI takes comparison {', '.join(NUMERIC_COMPARISONS)}, not {value!r}"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold_fits(cls, value: float | None, info: ValidationInfo) -> float | None:
        kpi, comparison = info.data.get("kpi"), info.data.get("comparison")
        if kpi is None or comparison is None:
            return value
        if value is not None and not math.isfinite(value):
            raise ValueError("the threshold must be a finite number")
        if kpi in ("tier", "goal_status"):
            if value is not None:
                raise ValueError(f"a {kpi.replace('_', ' ')} change takes no threshold")
            return None
        if kpi == "sync":
            if value is None:
                return DEFAULT_SYNC_FAILURES
            if value < 1 or value != int(value):
                raise ValueError("the number of failed syncs must be a whole number of 1 or more")
            return value
        if value is None:
            raise ValueError(f"comparison {comparison} needs a threshold")
        if comparison in ("down_percent", "up_percent") and value <= 0:
            raise ValueError("a change in percent must be above 0, such as 30")
        return value

    @field_validator("statuses")
    @classmethod
    def _statuses_of_goals(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        kpi = info.data.get("kpi")
        if value is not None and kpi is not None and kpi != "goal_status":
            raise ValueError("statuses belong to a rule of kpi goal_status")
        return value

    @property
    def sync_failures(self) -> int:
        return int(self.threshold or DEFAULT_SYNC_FAILURES)


Alerts = Annotated[list[AlertRule], AfterValidator(named_once("alerts"))]

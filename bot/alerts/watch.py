"""What an alert rule sees in the store now: for each subject it watches (an active partner, the
program, the sync, a current goal), whether its condition holds and the values a message shows.

A KPI with no value (null: nothing to divide by) never holds a condition, and a change in percent
needs a previous value above 0. The comparisons are exact: `down_percent 30` holds when
(previous - now) * 100 >= 30 * previous.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from kpi.engine import KpiEngine
from kpi.goals import PARTNERS
from kpi.goals import PROGRAM as PROGRAM_GOALS
from kpi.store import Store, goal_key
from kpi.tiers import earned_tier
from settings.alerts import AlertRule
from settings.app import AppConfig
from settings.periods import Period, parse_period

PROGRAM = "program"
SYNC = "sync"
#: Sync outcomes that count as a failure for `kpi: sync` (a process that died mid-sync too).
FAILED = frozenset({"failed", "interrupted"})
REFUSED = "refused"


@dataclass(frozen=True)
class Observation:
    """One subject of a rule now. `value` is the KPI's value, the earned tier, or the last
    sync's status; `previous` the previous period's value, or the last sync's error."""

    subject: str  # a partner's id, "program", "sync", or "goal:<goal key>"
    name: str  # what a person reads: the partner's name
    holds: bool
    value: Any = None
    previous: Any = None
    goal: dict[str, Any] | None = None  # a goal rule's goal object (section 9), for the message


class Watcher:
    """Observes rules over one state of the store; the cards of a period are computed once."""

    def __init__(self, store: Store, app: AppConfig, today: Callable[[], date]) -> None:
        self.store, self.app, self.today = store, app, today
        self.engine = KpiEngine(store, app.kpi_settings)
        self._cards: dict[str, dict[str, dict[str, Any]]] = {}
        self._program: dict[str, dict[str, Any]] = {}
        self._goals: dict[str, list[dict[str, Any]]] = {}

    def observe(self, rule: AlertRule, only: str | None = None) -> list[Observation]:
        """Every subject of `rule`; with `only`, that partner's alone (a channel shared with it)."""
        if rule.kpi == "sync":
            return [] if only else [self._sync(rule)]
        if rule.kpi == "goal_status":
            return self._goal_observations(rule, only)
        period = parse_period(rule.period, self.today())
        if rule.scope == "program":
            return [] if only else [self._program_observation(rule, period)]
        active = {p.id for p in self.engine.partners() if p.active_at(period.end)}
        cards = self._partner_cards(period)
        found = []
        for partner_id, card in cards.items():
            if partner_id not in active or (only is not None and partner_id != only):
                continue
            name = card["partner"]["name"]
            if rule.kpi == "tier":
                tier = earned_tier(self.app.kpi.tiers, card["quality_score"])
                found.append(Observation(partner_id, name, False, tier))
                continue
            now, before = card["kpis"].get(rule.kpi), card["previous"].get(rule.kpi)
            found.append(Observation(partner_id, name, holds(rule, now, before), now, before))
        return found

    def _goal_observations(self, rule: AlertRule, only: str | None) -> list[Observation]:
        """Each current goal of the partners (of `only`), or of the program, with its status.
        A goal's subject is its identity (partner, KPI, date range), so a goal set again with
        another target keeps its history."""
        which = only or (PROGRAM_GOALS if rule.scope == "program" else PARTNERS)
        if which not in self._goals:
            self._goals[which] = self.engine.current_goals(which, self.today())
        found = []
        for goal in self._goals[which]:
            partner = goal["partner"]
            start, end = (date.fromisoformat(goal["period"][k]) for k in ("start", "end"))
            key = goal_key(partner["id"] if partner else None, goal["kpi"], start, end)
            name = partner["name"] if partner else PROGRAM
            found.append(Observation(f"goal:{key}", name, False, goal["status"], goal=goal))
        return found

    def _partner_cards(self, period: Period) -> dict[str, dict[str, Any]]:
        self._overview(period)
        return self._cards[period.name]

    def _program_observation(self, rule: AlertRule, period: Period) -> Observation:
        self._overview(period)
        card = self._program[period.name]
        now, before = card["kpis"].get(rule.kpi), card["previous"].get(rule.kpi)
        return Observation(PROGRAM, PROGRAM, holds(rule, now, before), now, before)

    def _overview(self, period: Period) -> None:
        """The program's and every partner's KPIs for `period`, computed once for all rules."""
        if period.name not in self._cards:
            self._program[period.name], self._cards[period.name] = self.engine.overview(period)

    def _sync(self, rule: AlertRule) -> Observation:
        runs = self.store.recent_syncs(rule.sync_failures)
        if not runs:
            return Observation(SYNC, SYNC, False)
        latest = runs[0]
        refused = latest.status == REFUSED
        failed = len(runs) >= rule.sync_failures and all(r.status in FAILED for r in runs)
        lines = (latest.error or "").strip().splitlines()
        reason = lines[0] if lines else ""
        return Observation(SYNC, SYNC, refused or failed, latest.status, reason)


def holds(rule: AlertRule, now: Any, before: Any) -> bool:
    """Whether a numeric rule's condition holds for a value and its previous period's."""
    threshold = rule.threshold
    if now is None or threshold is None:
        return False
    if rule.comparison == "below":
        return bool(now < threshold)
    if rule.comparison == "above":
        return bool(now > threshold)
    if before is None or before <= 0:
        return False
    if rule.comparison == "down_percent":
        return bool((before - now) * 100 >= threshold * before)
    return bool((now - before) * 100 >= threshold * before)  # up_percent

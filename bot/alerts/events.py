"""From what a rule sees now and what it last said, the events to post: each kept in the send
log under `alert:<rule>:<data version>:<subject>`, so the one replica that claims a key posts it
and a retry, a second replica or a restart finds it taken.

A rule's state for a subject is its latest entry (the highest data version): `fired` means the
condition held when last said, so it is not said again while it holds; `recovered` is said once
when it stops holding. A tier rule (and a goal status rule) remembers the value last seen: its
first look records a `baseline` (posted to nobody), then each different value is a `changed`
event; a goal status rule with `statuses` records a change to another status as a `baseline`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bot.alerts.watch import Observation
from kpi.store import Store
from settings.alerts import AlertRule

Kind = Literal["fired", "recovered", "changed", "baseline"]
KEY_PREFIX = "alert"
SEND_LOG_KIND = "alert"


@dataclass(frozen=True)
class AlertEvent:
    rule: str
    version: int  # the sync run whose data it was seen in
    kind: Kind
    subject: str
    name: str
    value: Any = None
    previous: Any = None  # the previous period's value; the tier or status before; sync's error
    goal: dict[str, Any] | None = None  # a goal rule's goal object (section 9)

    @property
    def key(self) -> str:
        return event_key(self.rule, self.version, self.subject)

    def detail(self) -> dict[str, Any]:
        """What the send log keeps of it: enough to post it again, or to know the state."""
        return {
            "rule": self.rule,
            "version": self.version,
            "kind": self.kind,
            "subject": self.subject,
            "name": self.name,
            "value": self.value,
            "previous": self.previous,
            "goal": self.goal,
        }

    @classmethod
    def of(cls, detail: dict[str, Any]) -> AlertEvent:
        return cls(
            str(detail["rule"]),
            int(detail["version"]),
            detail["kind"],
            str(detail["subject"]),
            str(detail["name"]),
            detail.get("value"),
            detail.get("previous"),
            detail.get("goal"),
        )


def rule_prefix(rule: str) -> str:
    return f"{KEY_PREFIX}:{rule}:"


def event_key(rule: str, version: int, subject: str) -> str:
    return f"{rule_prefix(rule)}{version}:{subject}"


def last_said(store: Store, rule: str) -> dict[str, AlertEvent]:
    """Each subject's latest event of `rule` (claimed, whether or not its post went out yet)."""
    latest: dict[str, AlertEvent] = {}
    for row in store.claims(SEND_LOG_KIND, rule_prefix(rule)):
        if not row.get("detail"):
            continue
        event = AlertEvent.of(row["detail"])
        known = latest.get(event.subject)
        if known is None or event.version > known.version:
            latest[event.subject] = event
    return latest


def due_events(
    rule: AlertRule,
    version: int,
    seen: Iterable[Observation],
    said: dict[str, AlertEvent],
) -> list[AlertEvent]:
    """The events `seen` calls for, given what was `said` (by subject) before `version`."""
    events: list[AlertEvent] = []
    for observation in seen:
        last = said.get(observation.subject)
        if last is not None and last.version >= version:
            continue  # decided already at this version (or a later one)
        new = _event(rule, version, observation, last)
        if new is not None:
            events.append(new)
    return events


def _event(
    rule: AlertRule, version: int, seen: Observation, last: AlertEvent | None
) -> AlertEvent | None:
    def event(kind: Kind, previous: Any = seen.previous) -> AlertEvent:
        return AlertEvent(
            rule.name, version, kind, seen.subject, seen.name, seen.value, previous, seen.goal
        )

    if rule.comparison == "changed":
        if last is None:
            return event("baseline", None)
        if last.value != seen.value:
            unwatched = rule.statuses is not None and seen.value not in rule.statuses
            return event("baseline" if unwatched else "changed", last.value)
        return None
    active = last is not None and last.kind == "fired"
    if seen.holds and not active:
        return event("fired")
    if not seen.holds and active:
        return event("recovered")
    return None

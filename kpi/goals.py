"""Goals (kpi-spec.md section 9): read from their three sources, and set or cleared from Slack.

Sources, in the order read, a later goal with the same partner, KPI and date range replacing an
earlier one: the store's goals from goals.csv (the files source, or a CRM's secondary folder),
app.yaml `goals:`, then the goals set in Slack (stored under the source `slack` until cleared).
An app.yaml entry whose partner is neither a partner's id nor exactly one partner's name
(ignoring case) is left out and reported as a configuration problem naming its path; a stored
goal whose partner has since left the partners is left out silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Connection, delete, select

from kpi import schema
from kpi.goal_progress import GoalSpec
from kpi.store import Store, goal_key
from settings.goals import Direction, GoalEntry
from settings.periods import Period

SLACK = "slack"
APP_YAML = "app.yaml"
PROGRAM = ""  # the partner filter that asks for the program's goals
PARTNERS = "*"  # the partner filter that asks for every partner's goals (not the program's)
#: Which goals to read: None (all), one partner's id, PROGRAM, PARTNERS, or a set of partner ids.
Only = str | frozenset[str] | None


@dataclass
class GoalBook:
    """The goals in force, in the order of section 9, and the app.yaml entries left out."""

    goals: list[GoalSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_goals(
    connection: Connection,
    entries: Sequence[GoalEntry],
    names: Mapping[str, str],
    only: Only = None,
) -> GoalBook:
    """Every goal in force, given every partner's name by id; `only` limits them to one
    partner's id (or PROGRAM, or PARTNERS, or a set of partners' ids)."""
    book = GoalBook()
    found: dict[str, GoalSpec] = {}
    stored = _stored(connection, only)
    for goal in [g for g in stored if g.source != SLACK]:
        found[_key(goal)] = goal
    for index, entry in enumerate(entries):
        resolved = _resolve(entry, index, names, book.problems)
        if resolved is not None and _wanted(resolved.partner_id, only):
            found[_key(resolved)] = resolved
    for goal in [g for g in stored if g.source == SLACK]:
        found[_key(goal)] = goal
    known = [g for g in found.values() if g.partner_id is None or g.partner_id in names]
    book.goals = sorted(known, key=lambda g: order_key(g, names))
    return book


def order_key(goal: GoalSpec, names: Mapping[str, str]) -> tuple[object, ...]:
    """Program first, then partner name ignoring case, name, id; then start, kpi, end."""
    if goal.partner_id is None:
        partner: tuple[object, ...] = (0, "", "", "")
    else:
        name = names.get(goal.partner_id, "")
        partner = (1, name.casefold(), name, goal.partner_id)
    return (*partner, goal.period.start, goal.kpi, goal.period.end)


def set_goal(store: Store, goal: GoalSpec, user_id: str) -> None:
    """Stores a goal set in Slack; it wins over goals.csv and app.yaml until cleared."""
    key = _slack_id(goal.partner_id, goal.kpi, goal.period)
    row = {
        "id": key,
        "partner_id": goal.partner_id,
        "kpi": goal.kpi,
        "period": goal.period.name,
        "start_on": goal.period.start,
        "end_on": goal.period.end,
        "target": float(goal.target),
        "direction": goal.direction.value,
        "set_by": user_id,
        "set_at": datetime.now(UTC).replace(tzinfo=None),
        "source": SLACK,
        "row_hash": "",
    }
    with store.transaction() as connection:
        store.insert_or_update(connection, schema.goals, [row])


def clear_goal(store: Store, partner_id: str | None, kpi: str, period: Period) -> bool:
    """Removes a goal set in Slack (the file's or app.yaml's, if any, is in force again);
    False when Slack had set none."""
    table = schema.goals
    key = _slack_id(partner_id, kpi, period)
    with store.transaction() as connection:
        result = connection.execute(delete(table).where(table.c.id == key))
    return bool(result.rowcount)


def _slack_id(partner_id: str | None, kpi: str, period: Period) -> str:
    return f"{SLACK}|{goal_key(partner_id, kpi, period.start, period.end)}"


def _key(goal: GoalSpec) -> str:
    return goal_key(goal.partner_id, goal.kpi, goal.period.start, goal.period.end)


def _stored(connection: Connection, only: Only) -> list[GoalSpec]:
    table = schema.goals
    columns = (
        table.c.partner_id,
        table.c.kpi,
        table.c.period,
        table.c.start_on,
        table.c.end_on,
        table.c.target,
        table.c.direction,
        table.c.source,
        table.c.set_by,
    )
    query = select(*columns).order_by(table.c.id)
    if isinstance(only, frozenset):
        query = query.where(table.c.partner_id.in_(sorted(only)))
    elif only == PROGRAM:
        query = query.where(table.c.partner_id.is_(None))
    elif only == PARTNERS:
        query = query.where(table.c.partner_id.is_not(None))
    elif only is not None:
        query = query.where(table.c.partner_id == only)
    # one object per range, target and direction: thousands of goals share few of each
    periods: dict[tuple[str, date, date], Period] = {}
    targets: dict[str, Decimal] = {}
    directions = {item.value: item for item in Direction}
    goals = []
    rows = connection.execute(query)
    for partner_id, kpi, name, start, end, target, direction, source, set_by in rows:
        span = (name, start, end)
        period = periods.get(span) or periods.setdefault(span, Period(name, start, end, None))
        text = repr(target)  # the key, not the float: 0.0 == -0.0
        exact = targets.get(text)
        if exact is None:
            exact = targets[text] = Decimal(text)
        goals.append(
            GoalSpec(
                partner_id=partner_id,
                kpi=kpi,
                period=period,
                target=exact,
                direction=directions.get(direction) or Direction(direction),
                source=source,
                set_by=set_by,
            )
        )
    return goals


def _wanted(partner_id: str | None, only: Only) -> bool:
    if only is None:
        return True
    if isinstance(only, frozenset):
        return partner_id in only
    if only == PARTNERS:
        return partner_id is not None
    return (partner_id or PROGRAM) == only


def _resolve(
    entry: GoalEntry, index: int, names: Mapping[str, str], problems: list[str]
) -> GoalSpec | None:
    """The entry's goal with its partner found by id, else by exact name ignoring case."""
    ref = entry.partner_ref
    partner_id: str | None = None
    if ref is not None:
        by_name = [pid for pid, name in names.items() if name.casefold() == ref.casefold()]
        if ref in names:
            partner_id = ref
        elif len(by_name) == 1 and entry.partner_id is None:
            partner_id = by_name[0]
        else:
            where = "partner_id" if entry.partner_id is not None else "partner"
            reason = (
                f"{len(by_name)} partners are named {ref!r}; give the partner's id"
                if len(by_name) > 1 and entry.partner_id is None
                else f"no partner has the id or name {ref!r}"
            )
            problems.append(f"{APP_YAML}: goals[{index}].{where}: {reason}")
            return None
    fields = entry.fields
    return GoalSpec(
        partner_id=partner_id,
        kpi=fields.kpi,
        period=fields.period,
        target=fields.target,
        direction=fields.direction,
        source=APP_YAML,
    )

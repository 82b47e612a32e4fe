"""What a person asked for with `/partner-kpi ...`, parsed from the command's text.

`help`, `top [N] [by KPI|attainment [KPI]] [period]`, `compare A vs B [period]`, `program [period]`,
`at-risk [period]`, `goal [clear] <partner>|program <kpi> [target] <period> [direction]`, else
`<partner> [period]`. The trailing words that read as a period (up to
three: `last quarter`, `Q3 2026`) are the period, and trailing words meant as a period that
read as none (`last-quater`) are answered with the accepted forms; unknown subcommand words are
taken as a partner name, and an empty text is help.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from kpi.leaders import ATTAINMENT, RANKABLE
from settings.periods import DEFAULT_PERIOD, PeriodError, parse_period
from settings.vocab import PARTNER_KPI_KEYS, PROGRAM_ONLY_KPI_KEYS

MAX_TOP = 50


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class ShowScorecard:
    partner: str  # a name, part of one, or a CRM id, as typed
    period: str = DEFAULT_PERIOD


@dataclass(frozen=True)
class ShowTop:
    count: int = 10
    by: str = "quality_score"
    period: str = DEFAULT_PERIOD
    goal_kpi: str = "won_revenue"  # with by = attainment: the KPI whose goals are compared


@dataclass(frozen=True)
class ShowCompare:
    first: str
    second: str
    period: str = DEFAULT_PERIOD


@dataclass(frozen=True)
class ShowProgram:
    period: str = DEFAULT_PERIOD


@dataclass(frozen=True)
class ShowAtRisk:
    period: str = DEFAULT_PERIOD


@dataclass(frozen=True)
class SetGoal:
    """`goal Acme won_revenue 500k 2026-Q4 [at_least|at_most]`; partner None: the program."""

    partner: str | None
    kpi: str
    target: str  # as typed: 500k, 1.2M, $500,000, 45%
    period: str
    direction: str | None = None


@dataclass(frozen=True)
class ClearGoal:
    """`goal clear Acme won_revenue 2026-Q4`: the goal set in Slack is removed."""

    partner: str | None
    kpi: str
    period: str


@dataclass(frozen=True)
class BadRequest:
    """Something that cannot be answered: the name of the sentence that says why, in
    templates/error.json.j2, and its values."""

    sentence: str
    values: tuple[tuple[str, str], ...] = ()


Intent = (
    Help
    | ShowScorecard
    | ShowTop
    | ShowCompare
    | ShowProgram
    | ShowAtRisk
    | SetGoal
    | ClearGoal
    | BadRequest
)

_VS = re.compile(r"\s+(?:vs\.?|versus|and|&)\s+", re.IGNORECASE)
_BY_ALIASES = {"score": "quality_score", "quality": "quality_score", "revenue": "won_revenue"}


def parse(text: str, as_of: date) -> Intent:
    try:
        return _intent(text, as_of)
    except UnreadablePeriod as error:
        return BadRequest("period", (("text", str(error)),))


def _intent(text: str, as_of: date) -> Intent:
    words = text.split()
    if not words or words[0].lower() in ("help", "?", "-h", "--help"):
        return Help()
    head = words[0].lower()
    if head == "goal":
        return _goal(words[1:])
    rest, period = _split_period(words[1:], as_of)
    if head == "top":
        return _top(rest, period)
    if head == "compare":
        parts = _VS.split(" ".join(rest), maxsplit=1)
        if len(parts) != 2 or not all(part.strip() for part in parts):
            return BadRequest("compare_needs_two")
        return ShowCompare(parts[0].strip(), parts[1].strip(), period)
    if head == "program" and not rest:
        return ShowProgram(period)
    if head in ("at-risk", "atrisk", "risk") and not rest:
        return ShowAtRisk(period)
    name, period = _split_period(words, as_of)
    if not name:
        return ShowProgram(period)
    return ShowScorecard(" ".join(name), period)


def _top(rest: list[str], period: str) -> Intent:
    count, by = 10, "quality_score"
    words = list(rest)
    if words and words[0].isdigit():
        count = min(max(int(words.pop(0)), 1), MAX_TOP)
    if words and words[0].lower() == "by":
        words.pop(0)
    if words and words[0].lower() == ATTAINMENT:  # `top by attainment [KPI]`: on goals
        goal_kpi = words[1].lower() if len(words) == 2 else "won_revenue"
        if len(words) > 2 or goal_kpi not in PARTNER_KPI_KEYS:
            known = ", ".join(PARTNER_KPI_KEYS)
            return BadRequest("cannot_rank_by", (("words", " ".join(words)), ("known", known)))
        return ShowTop(count, ATTAINMENT, period, goal_kpi)
    if words:
        wanted = "_".join(w.lower() for w in words).replace("-", "_")
        by = _BY_ALIASES.get(wanted, wanted)
        if by not in RANKABLE:
            known = ", ".join(sorted(RANKABLE))
            return BadRequest("cannot_rank_by", (("words", " ".join(words)), ("known", known)))
    return ShowTop(count, by, period)


_DIRECTIONS = ("at_least", "at_most")
_GOAL_KPIS = frozenset(PARTNER_KPI_KEYS) | frozenset(PROGRAM_ONLY_KPI_KEYS)


def _goal(words: list[str]) -> Intent:
    """`goal [clear] PARTNER|program KPI [TARGET] PERIOD [DIRECTION]`; the KPI is the last word
    that is a KPI key, so a partner's name may have any words before it."""
    clear = bool(words) and words[0].lower() == "clear"
    words = words[1:] if clear else words
    at = max((i for i, w in enumerate(words) if w.lower() in _GOAL_KPIS), default=None)
    if at is None:
        return BadRequest("goal_usage")
    named = " ".join(words[:at]).strip()
    partner = None if named.lower() in ("", "program", "the program") else named
    kpi, after = words[at].lower(), words[at + 1 :]
    if clear:
        if not after:
            return BadRequest("goal_usage")
        return ClearGoal(partner, kpi, " ".join(after))
    direction = after.pop().lower() if after and after[-1].lower() in _DIRECTIONS else None
    if len(after) < 2:
        return BadRequest("goal_usage")
    return SetGoal(partner, kpi, after[0], " ".join(after[1:]), direction)


#: The most words a period takes (`last 30 days`).
PERIOD_WORDS = 3
#: Trailing words that were meant as a period (`last-quater`, `Q5`, `2026-13`, `last fortnight`).
_PERIODISH = re.compile(r"(?:last|this|past)-.*|\d{4}-.*|q\d+|.*\.\..*|[yqm]td", re.IGNORECASE)
_SPOKEN = re.compile(
    r"(?:last|this|past) (?:\d+\w*|weeks?|fortnight|days?|months?|quarters?|years?|q\d+)",
    re.IGNORECASE,
)


class UnreadablePeriod(Exception):
    """The text ends in something meant as a period that is none; the message says so."""


def _split_period(words: list[str], as_of: date) -> tuple[list[str], str]:
    """Takes a trailing period of up to three words (`last-quarter`, `last quarter`,
    `Q3 2026`, `2026-01-01..2026-03-31`), the longest that reads as one. Raises
    UnreadablePeriod when the last words look like a period but are none."""
    for size in range(min(PERIOD_WORDS, len(words)), 0, -1):
        text = " ".join(words[-size:])
        try:
            parse_period(text, as_of)
        except PeriodError:
            continue
        return words[:-size], text
    tail = _periodish_tail(words)
    if tail:
        raise UnreadablePeriod(str(PeriodError(" ".join(tail))))
    return words, DEFAULT_PERIOD


def _periodish_tail(words: list[str]) -> list[str]:
    """The last words when they were meant as a period (`last-quater`, `last fortnight`)."""
    if len(words) >= 2 and _SPOKEN.fullmatch(" ".join(words[-2:])):
        return words[-2:]
    return words[-1:] if words and _PERIODISH.fullmatch(words[-1]) else []

"""Five-field cron (minute hour day month weekday) read as crontab(5) reads it, for app.yaml's
digest, sync and survey schedules: numbers and names (`jan`-`dec`, `sun`-`sat`, any case),
ranges, lists and steps; `0` and `7` are Sunday, `1` is Monday. When both day-of-month and
day-of-week are restricted (neither starts with `*`), a day matches when EITHER does, so
`0 9 1-7 * 2` runs on the 1st to the 7th and on every Tuesday. One extension: `tue#1` in the
weekday field is the month's first Tuesday (`#1`-`#5`), with `*` as day of month.

The text is only parsed here; bot/schedule.py turns a `CronSpec` into a trigger."""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
HINT = "five fields (minute hour day month weekday), e.g. '0 9 * * mon' for Mondays at 09:00"


class CronError(ValueError):
    """A schedule that is not five-field cron; the message is one sentence for the user."""


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0  # the number of names[0]

    def number(self, token: str) -> int:
        word = token.lower()
        if word in self.names:
            return self.names.index(word) + self.name_base
        if not token.isdigit():
            raise CronError(f"{token!r} is not a {self.name}")
        value = int(token)
        if not self.low <= value <= self.high:
            raise CronError(f"{self.name} {value} is outside {self.low}-{self.high}")
        return value

    def parse(self, text: str) -> frozenset[int]:
        values: set[int] = set()
        for part in text.split(","):
            values |= self._part(part)
        return frozenset(values)

    def _part(self, part: str) -> set[int]:
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"step {step_text!r} in {part!r} is not a positive number")
            step = int(step_text)
        if span == "*":
            low, high = self.low, self.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = self.number(first), self.number(last)
            if low > high:
                raise CronError(f"range {span!r} runs backwards; write it from low to high")
        elif span:
            low = self.number(span)
            high = self.high if step_text else low
        else:
            raise CronError(f"{part!r} is an empty {self.name}")
        return set(range(low, high + 1, step))


MINUTE = Field("minute", 0, 59)
HOUR = Field("hour", 0, 23)
DAY = Field("day of month", 1, 31)
MONTH = Field("month", 1, 12, MONTHS, 1)
WEEKDAY = Field("weekday", 0, 7, WEEKDAYS, 0)
NTH = re.compile(r"^(?P<day>[a-z0-9]+)#(?P<n>[1-5])$", re.IGNORECASE)


@dataclass(frozen=True)
class CronSpec:
    """A parsed schedule. `weekdays` uses 0 = Sunday ... 6 = Saturday (7 folded into 0);
    `nth_weekdays` holds (weekday, n) for `tue#1`. `day_star` / `weekday_star` say the field
    starts with `*` (crontab(5)'s test for "unrestricted")."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    nth_weekdays: frozenset[tuple[int, int]]
    day_star: bool
    weekday_star: bool
    hour_star: bool

    @property
    def either_day(self) -> bool:
        """Both day fields restricted: a day matches when either matches."""
        return not self.day_star and not self.weekday_star


def parse_cron(value: str) -> CronSpec:
    """Reads a five-field cron schedule; raises CronError with one sentence."""
    text = " ".join(value.split())
    fields = text.split(" ")
    if len(fields) != 5 or not text:
        raise CronError(f"{value!r} is not a cron schedule; use {HINT}")
    minute, hour, day, month, weekday = fields
    try:
        weekdays, nth = _weekdays(weekday)
        if nth and day != "*":
            raise CronError(f"{weekday!r} needs '*' as day of month")
        spec = CronSpec(
            text=text,
            minutes=MINUTE.parse(minute),
            hours=HOUR.parse(hour),
            days=DAY.parse(day),
            months=MONTH.parse(month),
            weekdays=weekdays,
            nth_weekdays=nth,
            day_star=day.startswith("*"),
            weekday_star=weekday.startswith("*"),
            hour_star=hour.startswith("*"),
        )
    except CronError as error:
        raise CronError(f"{value!r} is not a cron schedule: {error}") from None
    return spec


def _weekdays(text: str) -> tuple[frozenset[int], frozenset[tuple[int, int]]]:
    plain: list[str] = []
    nth: set[tuple[int, int]] = set()
    for part in text.split(","):
        found = NTH.match(part)
        if found is None:
            plain.append(part)
        else:
            nth.add((WEEKDAY.number(found["day"]) % 7, int(found["n"])))
    days = WEEKDAY.parse(",".join(plain)) if plain else frozenset[int]()
    return frozenset(day % 7 for day in days), frozenset(nth)

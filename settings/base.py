"""What every app.yaml section shares: unknown keys are errors, validators of the values
several layers write (cron schedules, time zones, periods), and the error wording: one line
per problem, with the value's path (`app.yaml: digests[1].schedule: ...`)."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from settings.cron import parse_cron
from settings.periods import PeriodError, parse_period


class ConfigError(Exception):
    """A configuration a person can fix; the message is one sentence per problem."""


class Section(BaseModel):
    """A block of app.yaml. Unknown keys are errors, so a typo never passes silently.

    `unknown_key_noun` names what the keys of this section are, for the error message.
    """

    model_config = ConfigDict(extra="forbid")
    unknown_key_noun: ClassVar[str] = "field"


def crontab(value: str) -> str:
    """A five-field cron expression (minute hour day month weekday), as crontab(5) reads it."""
    return parse_cron(value).text


def iana_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return value


def period_text(value: str) -> str:
    try:
        parse_period(value, date(2026, 1, 15))  # any day: only the form is checked here
    except PeriodError as error:
        raise ValueError(str(error)) from None
    return value.strip()


class Named(typing.Protocol):
    @property
    def name(self) -> str: ...


NamedT = typing.TypeVar("NamedT", bound=Named)


def named_once(plural: str) -> Callable[[list[NamedT]], list[NamedT]]:
    """A check that no two of a list's items share a name (ignoring case)."""

    def check(items: list[NamedT]) -> list[NamedT]:
        names = [item.name.casefold() for item in items]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two {plural} are named {twice[0]!r}; give each its own name")
        return items

    return check


CronSchedule = Annotated[str, AfterValidator(crontab)]
TimezoneName = Annotated[str, AfterValidator(iana_timezone)]
PeriodText = Annotated[str, AfterValidator(period_text)]


# --- error messages -----------------------------------------------------------------------


def describe_errors(error: ValidationError, root: type[BaseModel]) -> Iterator[str]:
    """One line per problem: `kpi.weights.close_rat: unknown KPI; expected one of ...`;
    `root` is the model validated (an unknown key is looked up from it)."""
    for problem in error.errors():
        loc = problem["loc"]
        where = format_loc(loc)
        if problem["type"] == "extra_forbidden":
            section = _model_at(root, loc[:-1])
            if section is not None:
                noun = getattr(section, "unknown_key_noun", "field")
                expected = ", ".join(section.model_fields)
                yield f"{where}: unknown {noun}; expected one of {expected}"
                continue
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "literal_error":
            message = f"{message}, not {problem['input']!r}"
        yield f"{where}: {message}"


def format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The section model found by following `loc` from `model`, if it is one."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not _is_model(current):
            current = _unwrap(current, container=True)
        if isinstance(part, str):
            if not _is_model(current):
                return None
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = _unwrap(field.annotation, container=False)
    return current if _is_model(current) else None


def _is_model(thing: Any) -> bool:
    return isinstance(thing, type) and issubclass(thing, BaseModel)


def _unwrap(annotation: Any, container: bool) -> Any:
    """Strip Optional, and with `container` a list or dict, down to the inner type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return _unwrap(inner[0], container) if len(inner) == 1 else annotation
    if container and origin in (list, tuple) and args:
        return args[0]
    if container and origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return annotation

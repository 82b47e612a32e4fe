"""SOQL text built safely: field names are checked, every literal is quoted and escaped.

Nothing from app.yaml or the CRM reaches a query except through `field` and `literal`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*\Z")
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}

Literal = str | bool | int | datetime | date | None


def field_name(name: str) -> str:
    """`name` if it is a field or relationship path (`Owner.Email`); ValueError otherwise."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a Salesforce field name")
    return name


def literal(value: Literal) -> str:
    """A SOQL literal: quoted and escaped text, true/false, null, a number, a date or a UTC
    dateTime."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a SOQL dateTime needs a timezone")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return "'" + "".join(_ESCAPES.get(char, char) for char in value) + "'"


def equals(name: str, value: Literal | Sequence[str]) -> str:
    """`Name = 'x'`, or `Name IN ('x', 'y')` for a list."""
    if isinstance(value, list | tuple):
        return f"{field_name(name)} IN ({', '.join(literal(v) for v in value)})"
    return f"{field_name(name)} = {literal(value)}"  # type: ignore[arg-type]


def all_of(conditions: Iterable[str]) -> str:
    parts = [f"({c})" for c in conditions]
    return " AND ".join(parts)


def _order_item(item: str) -> str:
    """`Name` or `Name DESC` / `Name ASC`."""
    name, _, direction = item.partition(" ")
    if direction.upper() not in ("", "ASC", "DESC"):
        raise ValueError(f"{item!r} is not an ORDER BY item")
    return f"{field_name(name)} {direction.upper()}".rstrip()


@dataclass(frozen=True)
class Query:
    """A SELECT with optional child subqueries, conditions (ANDed) and an order."""

    sobject: str
    fields: Sequence[str]
    where: Sequence[str] = ()
    order_by: Sequence[str] = ()
    children: Sequence[Query] = field(default_factory=tuple)  # child relationship subqueries

    def text(self) -> str:
        columns = list(dict.fromkeys(field_name(f) for f in self.fields))
        columns += [f"({child.text()})" for child in self.children]
        soql = f"SELECT {', '.join(columns)} FROM {field_name(self.sobject)}"  # noqa: S608
        if self.where:
            soql += f" WHERE {all_of(self.where)}"
        if self.order_by:
            soql += f" ORDER BY {', '.join(_order_item(f) for f in self.order_by)}"
        return soql

    def having(self, *conditions: str) -> Query:
        return Query(
            self.sobject, self.fields, [*self.where, *conditions], self.order_by, self.children
        )

"""A loopback HTTPS server that answers as Salesforce's REST API does, for wire-level tests of
the real simple-salesforce.

It serves the SOAP login (/services/Soap/u/<ver>) and the OAuth token endpoint as
simple-salesforce calls them, `sobjects/<obj>/describe`, `query` and `queryAll` (a small SOQL
interpreter: fields and relationship paths, child subqueries, WHERE with AND/OR/NOT, IN,
comparisons, ORDER BY, LIMIT) with the real response shape and `nextRecordsUrl` paging, the
deleted-records resource, `Sforce-Limit-Info` on every response, and the real error bodies.
A request whose URI is longer than Salesforce's 16,384 bytes is answered `414 URI Too Long`
with the HTML body Salesforce's front end sends.

Large orgs (the benchmark's million opportunities) need not be held in memory: an object can be
`generated` — records produced on demand in (SystemModstamp, Id) order from a moment on — and a
query over it ordered that way streams page by page (its `totalSize` is then the rows produced
so far, which simple-salesforce does not read).

Login URLs are `https://<domain>.salesforce.com/...`; `FakeSalesforce.resolve()` makes every
`*.salesforce.com` host resolve to the server (a test's /etc/hosts), and the self-signed
certificate, generated at start, names those hosts and 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import ipaddress
import itertools
import json
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.fake_salesforce_bulk import Answer, BulkJobs, record_counts

# --- the org's schema -------------------------------------------------------------------

#: name -> (type, relationshipName, referenceTo); a small but faithful slice of the standard model.
STANDARD_FIELDS: dict[str, dict[str, tuple[str, str | None, str | None]]] = {
    "Account": {
        "Id": ("id", None, None),
        "Name": ("string", None, None),
        "IsPartner": ("boolean", None, None),
        "Type": ("picklist", None, None),
        "CreatedDate": ("datetime", None, None),
        "SystemModstamp": ("datetime", None, None),
        "IsDeleted": ("boolean", None, None),
        "OwnerId": ("reference", "Owner", "User"),
        "BillingCountry": ("string", None, None),
    },
    "User": {
        "Id": ("id", None, None),
        "Email": ("email", None, None),
        "Name": ("string", None, None),
    },
    "Contact": {
        "Id": ("id", None, None),
        "AccountId": ("reference", "Account", "Account"),
        "Email": ("email", None, None),
        "SystemModstamp": ("datetime", None, None),
        "IsDeleted": ("boolean", None, None),
    },
    "Opportunity": {
        "Id": ("id", None, None),
        "Name": ("string", None, None),
        "Amount": ("currency", None, None),
        "StageName": ("picklist", None, None),
        "IsClosed": ("boolean", None, None),
        "IsWon": ("boolean", None, None),
        "CreatedDate": ("datetime", None, None),
        "CloseDate": ("date", None, None),
        "Type": ("picklist", None, None),
        "LeadSource": ("picklist", None, None),
        "PartnerAccountId": ("reference", "PartnerAccount", "Account"),
        "SystemModstamp": ("datetime", None, None),
        "IsDeleted": ("boolean", None, None),
    },
    "OpportunityHistory": {
        "Id": ("id", None, None),
        "OpportunityId": ("reference", "Opportunity", "Opportunity"),
        "StageName": ("picklist", None, None),
        "Amount": ("currency", None, None),
        "CreatedDate": ("datetime", None, None),
        "SystemModstamp": ("datetime", None, None),
        "IsDeleted": ("boolean", None, None),
    },
    "OpportunityStage": {
        "Id": ("id", None, None),
        "MasterLabel": ("string", None, None),
        "ApiName": ("string", None, None),
        "SortOrder": ("int", None, None),
        "IsClosed": ("boolean", None, None),
        "IsWon": ("boolean", None, None),
    },
    "Case": {
        "Id": ("id", None, None),
        "AccountId": ("reference", "Account", "Account"),
        "Subject": ("string", None, None),
        "CreatedDate": ("datetime", None, None),
        "SystemModstamp": ("datetime", None, None),
        "IsDeleted": ("boolean", None, None),
    },
    "OpportunityPartner": {
        "Id": ("id", None, None),
        "OpportunityId": ("reference", "Opportunity", "Opportunity"),
        "AccountToId": ("reference", "AccountTo", "Account"),
        "Role": ("picklist", None, None),
        "IsPrimary": ("boolean", None, None),
        "CreatedDate": ("datetime", None, None),
        "SystemModstamp": ("datetime", None, None),
        "IsDeleted": ("boolean", None, None),
    },
}

#: (parent object, child relationship name) -> (child object, its field naming the parent)
CHILDREN = {
    ("Account", "Contacts"): ("Contact", "AccountId"),
    ("Opportunity", "OpportunityPartnersFrom"): ("OpportunityPartner", "OpportunityId"),
}

PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "OpportunityHistory": "008",
    "User": "005",
    "OpportunityStage": "01J",
    "OpportunityPartner": "00K",
    "Case": "500",
}


class Generated(Protocol):
    """An object whose records are made on demand (see the module's docstring)."""

    def since(self, moment: datetime | None) -> Iterator[dict[str, Any]]:
        """Records with SystemModstamp >= moment (all: None), in (SystemModstamp, Id) order."""
        ...


#: Salesforce's limit on a request's URI (and, with the headers, 16,384 bytes in all).
MAX_URI = 16_384


def sf_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def parse_sf_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- SOQL -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:\\.|[^'\\])*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    |(?P<op>!=|<=|>=|=|<|>)
    |(?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Token:
    kind: str
    text: str
    value: Any = None


def tokenize(soql: str) -> list[Token]:
    tokens, position = [], 0
    soql = soql.strip()
    while position < len(soql):
        match = _TOKEN.match(soql, position)
        if not match or match.end() == position:
            raise SoqlError("MALFORMED_QUERY", f"unexpected text at {soql[position:][:20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        text = match.group(kind)
        value: Any = text
        if kind == "string":
            value = re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(1)), text[1:-1])
        elif kind == "datetime":
            value = parse_sf_datetime(text)
        elif kind == "date":
            value = dt.date.fromisoformat(text)
        elif kind == "number":
            value = float(text)
        tokens.append(Token(kind, text, value))
    return tokens


@dataclass
class Select:
    sobject: str
    fields: list[str]
    children: list[Select]
    where: Any  # a predicate tree: ("and"|"or", a, b) | ("not", a) | ("cmp", field, op, value)
    order: list[tuple[str, bool]]  # (field, descending)
    limit: int | None


class Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self, word: str | None = None) -> Token | None:
        token = self.tokens[self.at] if self.at < len(self.tokens) else None
        if word is not None and (token is None or token.text.upper() != word):
            return None
        return token

    def take(self, word: str | None = None) -> Token:
        token = self.peek(word)
        if token is None:
            raise SoqlError("MALFORMED_QUERY", f"expected {word or 'more'}")
        self.at += 1
        return token

    def select(self) -> Select:
        self.take("SELECT")
        fields, children = [], []
        while True:
            if self.peek("("):
                self.take("(")
                children.append(self.select())
                self.take(")")
            else:
                fields.append(self.take().text)
            if not self.peek(","):
                break
            self.take(",")
        self.take("FROM")
        sobject = self.take().text
        where = None
        if self.peek("WHERE"):
            self.take("WHERE")
            where = self.disjunction()
        order = []
        if self.peek("ORDER"):
            self.take("ORDER")
            self.take("BY")
            while True:
                name = self.take().text
                descending = False
                if self.peek("DESC") or self.peek("ASC"):
                    descending = self.take().text.upper() == "DESC"
                order.append((name, descending))
                if not self.peek(","):
                    break
                self.take(",")
        limit = None
        if self.peek("LIMIT"):
            self.take("LIMIT")
            limit = int(self.take().value)
        return Select(sobject, fields, children, where, order, limit)

    def disjunction(self) -> Any:
        left = self.conjunction()
        while self.peek("OR"):
            self.take("OR")
            left = ("or", left, self.conjunction())
        return left

    def conjunction(self) -> Any:
        left = self.negation()
        while self.peek("AND"):
            self.take("AND")
            left = ("and", left, self.negation())
        return left

    def negation(self) -> Any:
        if self.peek("NOT"):
            self.take("NOT")
            return ("not", self.negation())
        if self.peek("("):
            self.take("(")
            inner = self.disjunction()
            self.take(")")
            return inner
        name = self.take().text
        if self.peek("IN") or self.peek("NOT"):
            negated = bool(self.peek("NOT"))
            if negated:
                self.take("NOT")
            self.take("IN")
            self.take("(")
            values = [self.value()]
            while self.peek(","):
                self.take(",")
                values.append(self.value())
            self.take(")")
            test = ("cmp", name, "IN", values)
            return ("not", test) if negated else test
        op = self.take().text
        return ("cmp", name, op, self.value())

    def value(self) -> Any:
        token = self.take()
        if token.kind == "name":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "null":
                return None
            raise SoqlError("MALFORMED_QUERY", f"unexpected {token.text}")
        return token.value


def parse_soql(soql: str) -> Select:
    parser = Parser(tokenize(soql))
    select = parser.select()
    if parser.at != len(parser.tokens):
        raise SoqlError("MALFORMED_QUERY", f"unexpected {parser.tokens[parser.at].text!r}")
    return select


# --- the org ----------------------------------------------------------------------------


@dataclass
class FakeOrg:
    """The org's data, clock, users and allowance; tests change it between syncs."""

    username: str = "partner-kpi@example.com"
    password: str = "correct horse"
    security_token: str = "TOKEN123"
    consumer_key: str = "3MVG9-consumer-key"
    consumer_secret: str = "consumer-secret"
    jwt_public_key: bytes | None = None
    api_total: int = 1_000_000
    api_used: int = 0
    page_size: int = 2000
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    custom_fields: dict[str, dict[str, tuple[str, str | None, str | None]]] = field(
        default_factory=dict
    )
    picklists: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: The delete log getDeleted reads: every deletion, to the recycle bin or for good.
    delete_log: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)
    #: Ids the integration user can no longer see (a sharing or permission change): absent
    #: from every query, queryAll too, and from getDeleted, as are their opportunities' history.
    hidden: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    logins: int = 0
    requests: list[str] = field(default_factory=list)  # "GET /path" of every request
    uri_lengths: list[int] = field(default_factory=list)  # of every GET's path and query
    #: Called before each REST request with (method, path); returns (status, body) to fail it.
    fault: Callable[[str, str], tuple[int, Any] | None] | None = None
    #: Objects whose records are made on demand (the benchmark's large org).
    generated: dict[str, Generated] = field(default_factory=dict)
    max_uri: int = MAX_URI
    # Bulk API 2.0 (tests/fake_salesforce_bulk.py): job-info looks before a job ends, most
    # records in a result set, and objects whose query jobs fail (object -> errorMessage).
    bulk_polls: int = 2
    bulk_page_size: int = 50_000
    bulk_failures: dict[str, str] = field(default_factory=dict)
    bulk_short_sets: int = 0  # result sets to send cut short (rows missing) before whole ones
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.RLock = field(default_factory=threading.RLock)
    _version: int = 0  # bumped by every change, for the child-relationship index
    _children: dict[tuple[str, str], tuple[int, dict[Any, list[dict[str, Any]]]]] = field(
        default_factory=dict
    )

    def clock(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta) if delta else timedelta(seconds=1)
        return self.now

    def new_id(self, sobject: str) -> str:
        return f"{PREFIXES.get(sobject, 'a00')}{next(self._ids):012d}AAA"

    def fields(self, sobject: str) -> dict[str, tuple[str, str | None, str | None]]:
        return {**STANDARD_FIELDS.get(sobject, {}), **self.custom_fields.get(sobject, {})}

    def insert(self, sobject: str, values: dict[str, Any], modified: datetime | None = None) -> str:
        """Adds a record; CreatedDate and SystemModstamp default to the org's clock."""
        with self.lock:
            moment = sf_datetime(modified or self.now)
            record = {"Id": values.get("Id") or self.new_id(sobject), "IsDeleted": False}
            record["CreatedDate"] = moment
            record.update(values)
            record["SystemModstamp"] = moment
            self.records.setdefault(sobject, {})[record["Id"]] = record
            self._version += 1
            return str(record["Id"])

    def update(self, sobject: str, record_id: str, **values: Any) -> None:
        with self.lock:
            record = self.records[sobject][record_id]
            record.update(values)
            record["SystemModstamp"] = sf_datetime(self.now)
            self._version += 1

    def soft_delete(self, sobject: str, record_id: str) -> None:
        self.update(sobject, record_id, IsDeleted=True)
        self.delete_log.setdefault(sobject, []).append((record_id, self.now))

    def hard_delete(self, sobject: str, record_id: str) -> None:
        with self.lock:
            record = self.records[sobject].pop(record_id)
            self._version += 1
            if not record["IsDeleted"]:  # one in the recycle bin is in the log already
                self.delete_log.setdefault(sobject, []).append((record_id, self.now))

    # --- describe ---------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        fields = []
        for name, (kind, relationship, reference) in self.fields(sobject).items():
            values = self.picklists.get((sobject, name), [])
            fields.append(
                {
                    "name": name,
                    "type": kind,
                    "label": name,
                    "relationshipName": relationship,
                    "referenceTo": [reference] if reference else [],
                    "picklistValues": [
                        {"value": v, "label": v, "active": True, "defaultValue": False}
                        for v in values
                    ],
                    "nillable": True,
                }
            )
        return {"name": sobject, "label": sobject, "queryable": True, "fields": fields}

    # --- queries ----------------------------------------------------------------------

    def run(self, soql: str, include_deleted: bool) -> Iterable[dict[str, Any]]:
        """The query's rows: a list, or a lazy iterator over a generated object."""
        select = parse_soql(soql)
        if select.sobject not in STANDARD_FIELDS and select.sobject not in self.custom_fields:
            raise SoqlError("INVALID_TYPE", f"sObject type '{select.sobject}' is not supported.")
        generated = self.generated.get(select.sobject)
        in_order = select.order in ([], [("SystemModstamp", False), ("Id", False)])
        if generated is not None and in_order:
            for name in select.fields:
                self._check_path(select.sobject, name)
            return self._streamed(select, generated, include_deleted)
        return self._rows(select, None, include_deleted)

    def _streamed(
        self, select: Select, generated: Generated, include_deleted: bool
    ) -> Iterator[dict[str, Any]]:
        taken = 0
        for record in generated.since(_lower_bound(select.where)):
            if select.limit is not None and taken >= select.limit:
                return
            if (include_deleted or not record.get("IsDeleted")) and self._holds(
                select.where, record, select.sobject
            ):
                taken += 1
                yield self._shape(select.sobject, select, record, include_deleted)

    def _children_of(self, sobject: str, link: str, parent_id: str) -> list[dict[str, Any]]:
        """The records of `sobject` whose `link` names the parent, through an index."""
        with self.lock:
            version, index = self._children.get((sobject, link), (-1, {}))
            if version != self._version:
                index = {}
                for record in self.records.get(sobject, {}).values():
                    index.setdefault(record.get(link), []).append(record)
                self._children[(sobject, link)] = (self._version, index)
            return list(index.get(parent_id, []))

    def _rows(
        self, select: Select, parent: tuple[str, str] | None, include_deleted: bool
    ) -> list[dict[str, Any]]:
        sobject = select.sobject
        if parent is not None:
            sobject = CHILDREN[(parent[0], select.sobject)][0]
        for name in [*select.fields, *(o[0] for o in select.order)]:
            self._check_path(sobject, name)
        if parent is not None:
            link = CHILDREN[(parent[0], select.sobject)][1]
            candidates = self._children_of(sobject, link, parent[1])
        elif sobject in self.generated:
            candidates = list(self.generated[sobject].since(None))
        else:
            with self.lock:
                candidates = list(self.records.get(sobject, {}).values())
        rows = [
            r
            for r in candidates
            if (include_deleted or not r.get("IsDeleted"))
            and self._visible(r)
            and self._holds(select.where, r, sobject)
        ]
        for name, descending in reversed(select.order):
            rows.sort(key=lambda r, n=name: _sort_key(self._value(r, n)), reverse=descending)
        if select.limit is not None:
            rows = rows[: select.limit]
        return [self._shape(sobject, select, r, include_deleted) for r in rows]

    def _visible(self, record: dict[str, Any]) -> bool:
        return not self.hidden or (
            record["Id"] not in self.hidden and record.get("OpportunityId") not in self.hidden
        )

    def _check_path(self, sobject: str, path: str) -> None:
        current = sobject
        *hops, last = path.split(".")
        for hop in hops:
            links = [f for f in self.fields(current).values() if f[1] == hop]
            if not links:
                raise _invalid_field(path, sobject)
            current = links[0][2] or ""
        if last not in self.fields(current):
            raise _invalid_field(path, sobject)

    def _value(self, record: dict[str, Any], path: str, sobject: str = "") -> Any:
        """The value at a path; a lookup the record holds no copy of is followed to the
        stored record it names, as Salesforce itself does (`Account.Type` on a Case)."""
        if "." not in path:
            return record.get(path)
        value: Any = record
        current = sobject
        for part in path.split("."):
            if not isinstance(value, dict):
                return None
            link = next(
                ((n, f) for n, f in self.fields(current).items() if f[1] == part and f[2]),
                None,
            )
            following = value.get(part)
            if following is None and link is not None and value.get(link[0]):
                following = self.records.get(link[1][2] or "", {}).get(value[link[0]])
            value, current = following, (link[1][2] or "") if link else ""
        return value

    def _holds(self, predicate: Any, record: dict[str, Any], sobject: str = "") -> bool:
        if predicate is None:
            return True
        kind = predicate[0]
        if kind == "and":
            return self._holds(predicate[1], record, sobject) and self._holds(
                predicate[2], record, sobject
            )
        if kind == "or":
            return self._holds(predicate[1], record, sobject) or self._holds(
                predicate[2], record, sobject
            )
        if kind == "not":
            return not self._holds(predicate[1], record, sobject)
        _, name, op, expected = predicate
        actual = self._value(record, name, sobject)
        if op == "IN":
            return actual in expected
        if isinstance(expected, datetime) and actual is not None:
            actual = parse_sf_datetime(actual)
        if isinstance(expected, dt.date) and not isinstance(expected, datetime) and actual:
            actual = dt.date.fromisoformat(str(actual)[:10])
        if op == "=":
            return bool(actual == expected)
        if op == "!=":
            return bool(actual != expected)
        if actual is None or expected is None:
            return False
        return bool(
            {"<": actual < expected, "<=": actual <= expected}.get(op)
            if op in ("<", "<=")
            else {">": actual > expected, ">=": actual >= expected}[op]
        )

    def _shape(
        self, sobject: str, select: Select, record: dict[str, Any], include_deleted: bool
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"attributes": _attributes(sobject, record.get("Id"))}
        for path in select.fields:
            *hops, last = path.split(".")
            target, source, current = row, record, sobject
            for hop in hops:
                current = next(f[2] for f in self.fields(current).values() if f[1] == hop) or ""
                source = source.get(hop) if isinstance(source, dict) else None
                if source is None:
                    target[hop] = None
                    break
                if not isinstance(target.get(hop), dict):
                    target[hop] = {"attributes": _attributes(current, source.get("Id"))}
                target = target[hop]
            else:
                target[last] = source.get(last) if isinstance(source, dict) else None
        for child in select.children:
            found = self._rows(child, (sobject, record["Id"]), include_deleted=False)
            row[child.sobject] = (
                {"totalSize": len(found), "done": True, "records": found} if found else None
            )
        return row


def _lower_bound(predicate: Any) -> datetime | None:
    """The latest `SystemModstamp >= t` (or `>`) that the whole predicate requires."""
    if predicate is None:
        return None
    if predicate[0] == "and":
        bounds = [b for b in (_lower_bound(predicate[1]), _lower_bound(predicate[2])) if b]
        return max(bounds) if bounds else None
    if predicate[0] == "cmp" and predicate[1] == "SystemModstamp" and predicate[2] in (">=", ">"):
        value = predicate[3]
        return value if isinstance(value, datetime) else None
    return None


class RowStream:
    """The rows of a query over a generated object, made page by page as they are asked for."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self.rows = rows
        self.position = 0
        self.ahead: list[dict[str, Any]] = []
        self.last: tuple[int, list[dict[str, Any]], bool] | None = None  # for a retried page

    def page(self, offset: int, size: int) -> tuple[list[dict[str, Any]], bool] | None:
        """`size` rows from `offset` and whether they are the last; None for a stale offset."""
        if self.last is not None and offset == self.last[0]:
            return self.last[1], self.last[2]
        if offset != self.position:
            return None
        page = self.ahead + list(itertools.islice(self.rows, size + 1 - len(self.ahead)))
        self.ahead = page[size:]
        page = page[:size]
        self.last = (offset, page, not self.ahead)
        self.position += len(page)
        return page, not self.ahead


def _attributes(sobject: str, record_id: Any) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/v62.0/sobjects/{sobject}/{record_id}"}


def _invalid_field(path: str, sobject: str) -> SoqlError:
    return SoqlError(
        "INVALID_FIELD",
        f"\nSELECT {path}\n       ^\nERROR at Row:1:Column:8\nNo such column '{path}' on "
        f"entity '{sobject}'. If you are attempting to use a custom field, be sure to append "
        "the '__c' after the custom field name.",
    )


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


# --- the server -------------------------------------------------------------------------

SOAP_OK = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope \
xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>\
<metadataServerUrl>{base}/services/Soap/m/{version}/00D000000000001</metadataServerUrl>\
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
<serverUrl>{base}/services/Soap/u/{version}/00D000000000001</serverUrl>\
<sessionId>{session}</sessionId><userId>005000000000001AAA</userId>\
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""

SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope \
xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\
<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>\
<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.\
</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault">\
<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, \
password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail>\
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""

_REST = re.compile(r"^/services/data/v(?P<version>\d+\.\d)/(?P<rest>.*)$")


class Handler(BaseHTTPRequestHandler):
    server: FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def org(self) -> FakeOrg:
        return self.server.org

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        path = urlparse(self.path).path
        self.org.requests.append(f"POST {path}")
        if path.startswith("/services/Soap/u/"):
            self._soap_login(body, path.rsplit("/", 1)[-1])
        elif path == "/services/oauth2/token":
            self._token(parse_qs(body))
        elif (match := _REST.match(path)) and self._admitted("POST", path):
            if match.group("rest").strip("/") == "jobs/query":
                self._answer(self.server.bulk.create(body, match.group("version")))
            else:
                self._json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
        elif not match:
            self._json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        path = urlparse(self.path).path
        self.org.requests.append(f"PATCH {path}")
        match = _REST.match(path)
        if not match:
            self._json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
        elif self._admitted("PATCH", path):
            parts = match.group("rest").strip("/").split("/")
            if parts[:2] == ["jobs", "query"] and len(parts) == 3:
                self._answer(self.server.bulk.abort(parts[2], body, match.group("version")))
            else:
                self._json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.org.requests.append(f"GET {url.path}")
        self.org.uri_lengths.append(len(self.path))
        if len(self.path) > self.org.max_uri:
            # Salesforce's front end answers before the API (no limit header, not counted).
            body = b"<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>"
            self.send_response(414)
            self.send_header("Content-Type", "text/html;charset=iso-8859-1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        match = _REST.match(url.path)
        if not match:
            self._json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
            return
        if not self._admitted("GET", url.path):
            return
        try:
            self._rest(match.group("rest"), parse_qs(url.query), match.group("version"))
        except SoqlError as error:
            self._json(400, [{"message": str(error), "errorCode": error.code}])

    def _admitted(self, method: str, path: str) -> bool:
        """Checks the session, counts the call against the allowance and applies the test's
        fault; False when it has answered the request already."""
        auth = self.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.org.sessions:
            self._json(
                401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
            )
            return False
        with self.org.lock:
            self.org.api_used += 1
            over = self.org.api_used > self.org.api_total
        if over:
            self._json(
                403,
                [
                    {
                        "message": "TotalRequests Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
            )
            return False
        if self.org.fault is not None:
            failure = self.org.fault(method, path)
            if failure is not None:
                self._json(*failure)
                return False
        return True

    # --- logins -----------------------------------------------------------------------

    def _soap_login(self, body: str, version: str) -> None:
        username = _xml_text(body, "username")
        password = _xml_text(body, "password")
        org = self.org
        if username != org.username or password != org.password + org.security_token:
            self._send(500, SOAP_FAULT.encode(), "text/xml; charset=utf-8")
            return
        session = self._new_session()
        xml = SOAP_OK.format(base=self.server.base_url, version=version, session=session)
        self._send(200, xml.encode(), "text/xml; charset=utf-8")

    def _token(self, form: dict[str, list[str]]) -> None:
        org = self.org
        grant = form.get("grant_type", [""])[0]
        ok = False
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer" and org.jwt_public_key:
            try:
                claims = jwt.decode(
                    form["assertion"][0],
                    org.jwt_public_key,
                    algorithms=["RS256"],
                    audience="https://login.salesforce.com",
                )
                ok = claims["iss"] == org.consumer_key and claims["sub"] == org.username
            except jwt.PyJWTError:
                ok = False
        elif grant == "client_credentials":
            expected = f"{org.consumer_key}:{org.consumer_secret}".encode()
            given = self.headers.get("Authorization", "").removeprefix("Basic ")
            ok = base64.b64decode(given or b"") == expected
        if not ok:
            self._json(
                400, {"error": "invalid_grant", "error_description": "authentication failure"}
            )
            return
        session = self._new_session()
        self._json(
            200,
            {
                "access_token": session,
                "instance_url": self.server.base_url,
                "id": "https://login.salesforce.com/id/00D000000000001/005000000000001",
                "token_type": "Bearer",
                "issued_at": "1700000000000",
                "signature": "c2lnbmF0dXJl",
            },
        )

    def _new_session(self) -> str:
        session = f"00D000000000001!{uuid.uuid4().hex}"
        with self.org.lock:
            self.org.sessions.add(session)
            self.org.logins += 1
        return session

    # --- REST -------------------------------------------------------------------------

    def _rest(self, rest: str, query: dict[str, list[str]], version: str) -> None:
        parts = [unquote(p) for p in rest.strip("/").split("/")]
        bulk = self.server.bulk
        if parts[:2] == ["jobs", "query"] and len(parts) == 3:
            self._answer(bulk.info(parts[2], version))
        elif parts[:2] == ["jobs", "query"] and parts[3:] == ["results"]:
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            self._answer(bulk.results(parts[2], query, gzipped))
        elif parts == ["limits", "recordCount"]:
            names = [n for v in query.get("sObjects", []) for n in v.split(",") if n]
            self._json(200, record_counts(self.org, names))
        elif parts[0] in ("query", "queryAll") and len(parts) == 1:
            rows = self.org.run(query["q"][0], include_deleted=parts[0] == "queryAll")
            self._page(parts[0], self.server.remember(rows), 0)
        elif parts[0] in ("query", "queryAll") and len(parts) == 2:
            locator, _, offset = parts[1].rpartition("-")
            self._page(parts[0], locator, int(offset))
        elif parts[0] == "sobjects" and len(parts) == 3 and parts[2] == "describe":
            if parts[1] not in STANDARD_FIELDS and parts[1] not in self.org.custom_fields:
                self._json(
                    404,
                    [
                        {
                            "message": "The requested resource does not exist",
                            "errorCode": "NOT_FOUND",
                        }
                    ],
                )
                return
            self._json(200, self.org.describe(parts[1]))
        elif parts[0] == "sobjects" and len(parts) == 3 and parts[2] == "deleted":
            self._deleted(parts[1], query)
        else:
            self._json(
                404,
                [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
            )

    def _page(self, endpoint: str, locator: str, offset: int) -> None:
        rows = self.server.cursors.get(locator)
        size = min(self.org.page_size, _batch_size(self.headers.get("Sforce-Query-Options")))
        taken = rows.page(offset, size) if isinstance(rows, RowStream) else None
        if rows is None or (isinstance(rows, RowStream) and taken is None):
            self._json(
                400, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
            )
            return
        if isinstance(rows, RowStream):
            assert taken is not None
            page, done = taken
            total = rows.position
        else:
            page = rows[offset : offset + size]
            done = offset + size >= len(rows)
            total = len(rows)
        body: dict[str, Any] = {"totalSize": total, "done": done, "records": page}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v62.0/{endpoint}/{locator}-{offset + size}"
        self._json(200, body)

    def _deleted(self, sobject: str, query: dict[str, list[str]]) -> None:
        start = parse_sf_datetime(query["start"][0])
        end = parse_sf_datetime(query["end"][0])
        found = [
            {"id": record_id, "deletedDate": sf_datetime(at)}
            for record_id, at in self.org.delete_log.get(sobject, [])
            if record_id not in self.org.hidden
            if start <= at <= end
        ]
        self._json(
            200,
            {
                "deletedRecords": found,
                "earliestDateAvailable": sf_datetime(self.org.now - timedelta(days=15)),
                "latestDateCovered": sf_datetime(min(end, self.org.now)),
            },
        )

    # --- sending ----------------------------------------------------------------------

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json;charset=UTF-8")

    def _answer(self, answer: Answer) -> None:
        if len(answer) == 3:
            status, headers, payload = answer
            self._send(status, payload, headers.pop("Content-Type"), headers)
        else:
            self._json(*answer)

    def _send(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Sforce-Limit-Info", f"api-usage={self.org.api_used}/{self.org.api_total}")
        self.end_headers()
        self.wfile.write(payload)


def _batch_size(header: str | None) -> int:
    match = re.search(r"batchSize=(\d+)", header or "")
    return int(match.group(1)) if match else 2000


def _xml_text(body: str, tag: str) -> str:
    match = re.search(rf"<(?:\w+:)?{tag}>(.*?)</(?:\w+:)?{tag}>", body, re.S)
    return html.unescape(match.group(1)) if match else ""


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, org: FakeOrg) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.org = org
        self.cursors: dict[str, list[dict[str, Any]] | RowStream] = {}
        self.bulk = BulkJobs(org)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def remember(self, rows: Iterable[dict[str, Any]]) -> str:
        locator = f"01g{uuid.uuid4().hex[:15]}"
        self.cursors[locator] = rows if isinstance(rows, list) else RowStream(iter(rows))
        return locator


class FakeSalesforce:
    """Runs a FakeServer over TLS in a thread; use as a context manager."""

    def __init__(self, org: FakeOrg, folder: Path) -> None:
        self.org = org
        self.cert_file, key_file = write_certificate(folder)
        self.server = FakeServer(org)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSalesforce:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def resolve(self, monkeypatch: Any) -> None:
        """Makes every *.salesforce.com host resolve to this server (port included)."""
        real = socket.getaddrinfo
        port = self.server.port

        def getaddrinfo(host: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(host, str) and host.endswith(".salesforce.com"):
                return real("127.0.0.1", port, *args, **kwargs)
            return real(host, service, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and *.salesforce.com, and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake.salesforce.com")])
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName("*.salesforce.com"),
        x509.DNSName("*.my.salesforce.com"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "fake-sf.pem", folder / "fake-sf.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file

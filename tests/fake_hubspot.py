"""A loopback HTTP server that answers as HubSpot's CRM v3/v4 APIs do, for wire-level tests of
the real hubspot-api-client.

Served: `GET /crm/v3/objects/{type}` (list, `paging.next.after`, `archived=true` with
`archivedAt`), `POST /crm/v3/objects/{type}/search` (filterGroups with EQ/NEQ/GT/GTE/LT/LTE/IN/
HAS_PROPERTY, sorts, `after`, at most 200 a page, and the 10,000-result cap: paging past it is a
400), `POST /crm/v3/objects/{type}/batch/read` (100 inputs, 50 with `propertiesWithHistory`,
history newest first, 207 with errors for missing ids), `GET /crm/v3/pipelines/deals`,
`GET /crm/v3/properties/{type}/{name}`, `GET /crm/v3/owners/` (paged), tickets as an object like
the others, and `POST /crm/v4/associations/{from}/{to}/batch/read`
with each result's own paging. Every answer carries the X-HubSpot-RateLimit-* headers; a wrong
token gets HubSpot's 401 body (category INVALID_AUTHENTICATION); `POST /oauth/v1/token` grants
OAuth access tokens for a refresh token (form-encoded; a bad one gets HubSpot's 400
`BAD_REFRESH_TOKEN` body), and an issued token can be made to expire after some calls (401
EXPIRED_AUTHENTICATION); over-long URLs get 414; injected faults give 429 bodies
(policyName TEN_SECONDLY_ROLLING with Retry-After, or DAILY), 502/503, or a dropped connection.
"""

from __future__ import annotations

import json
import operator
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CLIENT_ID = "6f0a1c2e-0000-4000-8000-00000000c11d"
CLIENT_SECRET = "8b1d2e3f-0000-4000-8000-0000005ec4e7"
REFRESH_TOKEN = "na1-0000-1111-2222-3333-refresh0token"
SEARCH_CAP = 10_000
DAILY_LIMIT = 500_000
URL_MAX = 8192  # a longer request target gets 414, as from HubSpot's front servers
DATE_ENTERED = "hs_v2_date_entered_"

#: (from, to) -> the HUBSPOT_DEFINED unlabeled association type id, both ways.
DEFAULT_TYPES = {
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("companies", "contacts"): 280,
    ("contacts", "companies"): 279,
    ("companies", "companies"): 450,
    ("tickets", "companies"): 339,
    ("companies", "tickets"): 340,
}
PRIMARY_TYPES = {("deals", "companies"): 5, ("companies", "deals"): 6}
MODIFIED = {"contacts": "lastmodifieddate"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Obj:
    id: int
    properties: dict[str, str | None]
    created: datetime
    modified: datetime
    history: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)
    archived_at: datetime | None = None
    modified_ms: int = 0

    def __post_init__(self) -> None:
        self.touch(self.modified)

    def touch(self, moment: datetime) -> None:
        self.modified = moment
        self.modified_ms = ms(moment)


@dataclass
class Fault:
    status: int  # 0: drop the connection
    remaining: int
    path: str = ""  # only requests whose path contains this
    retry_after: str | None = "1"
    after: int = 0  # matching requests to let through first
    policy: str = "TEN_SECONDLY_ROLLING"  # a 429's policyName: DAILY for the daily limit


@dataclass
class Association:
    to_id: int
    types: list[tuple[str, int, str | None]]  # (category, typeId, label)


class GeneratedObjects(Protocol):
    """An object type made on demand (a large portal for the benchmark), not held in memory."""

    def get(self, object_id: int) -> Obj | None: ...

    def scan(self, after: int, archived: bool) -> Iterator[Obj]:
        """The objects with an id of at least `after`, in id order."""

    def modified_since(self, moment_ms: int) -> Iterator[Obj]:
        """At least every live object last modified at or after `moment_ms`."""


class FakePortal:
    """The portal's data and the server's knobs."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
        self.objects: dict[str, dict[int, Obj]] = {
            "companies": {},
            "contacts": {},
            "deals": {},
            "tickets": {},
        }
        # The owners of GET /crm/v3/owners/: id, email, firstName, lastName, userId, ...
        self.owners: list[dict[str, Any]] = []
        # Object types served from a generator instead of `objects`, with their links.
        self.generated: dict[str, GeneratedObjects] = {}
        self.links: dict[tuple[str, str], Mapping[int, list[Association]]] = {}
        self.pipelines: list[dict[str, Any]] = []
        self.properties: dict[tuple[str, str], dict[str, Any]] = {}
        self.tokens = {TOKEN}
        # The OAuth app: refresh tokens it accepts, tokens it issued, and how many calls each
        # new token may make before it expires (an empty list: no limit).
        self.oauth_client = (CLIENT_ID, CLIENT_SECRET)
        self.refresh_tokens = {REFRESH_TOKEN}
        self.token_lifetime = 1800  # expires_in, seconds
        self.expiring_tokens: list[int] = []
        self.token_calls: dict[str, int | None] = {}  # issued token -> calls left
        self.token_grants: list[dict[str, str]] = []  # every POST /oauth/v1/token's form
        self.expired_answers = 0
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.association_page_size = 100
        self.next_id = 1000
        self.lock = threading.Lock()
        for object_type, names in {
            "companies": ["name", "type", "createdate", "hs_lastmodifieddate", "hs_object_id"],
            "contacts": ["email", "createdate", "lastmodifieddate", "hs_object_id"],
            "deals": ["dealname", "amount", "dealstage", "pipeline", "closedate", "createdate"],
            "tickets": ["subject", "hs_pipeline_stage", "createdate", "hs_lastmodifieddate"],
        }.items():
            for name in names:
                self.define(object_type, name)
        for name in ["hubspot_owner_id", "hs_lifecyclestage_customer_date"]:
            self.define("companies", name)
        stages = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead"]
        stages += ["opportunity", "customer", "evangelist", "other"]
        self.define("companies", "lifecyclestage", [(s.title(), s) for s in stages])
        for name in ["deal_currency_code", "dealtype", "hs_analytics_source", "hs_object_id"]:
            self.define("deals", name)
        self.define("deals", "hs_lastmodifieddate")

    # --- setting up -----------------------------------------------------------------------

    def define(
        self, object_type: str, name: str, options: list[tuple[str, str]] | None = None
    ) -> None:
        """A property; `options` as (label, value) make it an enumeration."""
        self.properties[(object_type, name)] = {
            "name": name,
            "label": name.replace("_", " ").title(),
            "type": "enumeration" if options else "string",
            "fieldType": "select" if options else "text",
            "groupName": f"{object_type[:-1]}information",
            "description": "",
            "options": [
                {"label": label, "value": value, "displayOrder": n, "hidden": False}
                for n, (label, value) in enumerate(options or [])
            ],
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": name == "hs_object_id",
            "hidden": False,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": True,
                "readOnlyValue": False,
            },
            "formField": True,
            "createdAt": "2020-01-01T00:00:00Z",
            "updatedAt": "2020-01-01T00:00:00Z",
            "archived": False,
        }

    def pipeline(
        self, label: str, stages: list[tuple[str, str, bool, float]], order: int = 0
    ) -> None:
        """A deal pipeline of (stage id, label, isClosed, probability), with the
        `hs_v2_date_entered_<stage id>` property HubSpot makes for each stage."""
        for stage_id, stage_label, _, _ in stages:
            name = f"{DATE_ENTERED}{stage_id}"
            self.define("deals", name)
            self.properties[("deals", name)].update(
                label=f'Date entered "{stage_label} ({label})"', type="datetime", fieldType="date"
            )
        self.pipelines.append(
            {
                "id": "default" if not self.pipelines else f"pipeline{len(self.pipelines)}",
                "label": label,
                "displayOrder": order,
                "createdAt": "2020-01-01T00:00:00Z",
                "updatedAt": "2020-01-01T00:00:00Z",
                "archived": False,
                "stages": [
                    {
                        "id": stage_id,
                        "label": stage_label,
                        "displayOrder": n,
                        "metadata": {"isClosed": str(closed).lower(), "probability": str(p)},
                        "createdAt": "2020-01-01T00:00:00Z",
                        "updatedAt": "2020-01-01T00:00:00Z",
                        "archived": False,
                        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    }
                    for n, (stage_id, stage_label, closed, p) in enumerate(stages)
                ],
            }
        )

    def owner(self, owner_id: int, email: str) -> None:
        """An active owner (a HubSpot user who can own records), as the owners API lists it."""
        first, _, last = email.split("@")[0].partition(".")
        self.owners.append(
            {
                "id": str(owner_id),
                "email": email,
                "type": "PERSON",
                "firstName": first.title(),
                "lastName": last.title(),
                "userId": owner_id + 9_000_000,
                "userIdIncludingInactive": owner_id + 9_000_000,
                "createdAt": "2020-01-01T00:00:00Z",
                "updatedAt": "2020-01-01T00:00:00Z",
                "archived": False,
                "teams": [],
            }
        )

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def clock(self) -> datetime:
        return self.now

    def create(
        self,
        object_type: str,
        properties: dict[str, Any],
        created: datetime | None = None,
        modified: datetime | None = None,
        object_id: int | None = None,
        history: dict[str, list[tuple[str, datetime]]] | None = None,
    ) -> int:
        with self.lock:
            if object_id is None:
                self.next_id += 1
                object_id = self.next_id
            created = created or self.now
            modified = modified or self.now
            props = {k: None if v is None else str(v) for k, v in properties.items()}
            props["hs_object_id"] = str(object_id)
            props.setdefault("createdate", iso(created))
            props[MODIFIED.get(object_type, "hs_lastmodifieddate")] = iso(modified)
            obj = Obj(object_id, props, created, modified, dict(history or {}))
            if object_type == "deals" and "dealstage" not in obj.history and props.get("dealstage"):
                obj.history["dealstage"] = [(str(props["dealstage"]), created)]
            self.objects[object_type][object_id] = obj
            return object_id

    def update(self, object_type: str, object_id: int, **properties: Any) -> None:
        with self.lock:
            obj = self.objects[object_type][object_id]
            for name, value in properties.items():
                text = None if value is None else str(value)
                if name == "dealstage" and text and text != obj.properties.get(name):
                    obj.history.setdefault(name, []).append((text, self.now))
                obj.properties[name] = text
            obj.touch(self.now)
            obj.properties[MODIFIED.get(object_type, "hs_lastmodifieddate")] = iso(self.now)

    def archive(self, object_type: str, object_id: int) -> None:
        """Archiving keeps hs_lastmodifieddate as it was, as HubSpot does."""
        self.objects[object_type][object_id].archived_at = self.now

    def associate(
        self,
        from_type: str,
        from_id: int,
        to_type: str,
        to_id: int,
        label: tuple[int, str] | None = None,
    ) -> None:
        """Both directions, with HubSpot's default type ids and an optional user label."""
        for (a, a_id), (b, b_id) in (
            ((from_type, from_id), (to_type, to_id)),
            ((to_type, to_id), (from_type, from_id)),
        ):
            types = [("HUBSPOT_DEFINED", DEFAULT_TYPES[(a, b)], None)]
            if label is not None:
                types.append(("USER_DEFINED", label[0] + (0 if a == from_type else 1), label[1]))
            links = self.links.setdefault((a, b), {})
            assert isinstance(links, dict), "generated links are read-only"
            links.setdefault(a_id, []).append(Association(b_id, types))

    def live(self, object_type: str) -> list[Obj]:
        return [o for o in self.objects[object_type].values() if o.archived_at is None]

    # --- reading, from `objects` or a generator -------------------------------------------

    def lookup(self, object_type: str, object_id: int) -> Obj | None:
        generated = self.generated.get(object_type)
        if generated is not None:
            return generated.get(object_id)
        return self.objects[object_type].get(object_id)

    def scan(self, object_type: str, after: int, archived: bool) -> Iterator[Obj]:
        generated = self.generated.get(object_type)
        if generated is not None:
            return generated.scan(after, archived)
        chosen = (
            o
            for o in self.objects[object_type].values()
            if (o.archived_at is not None) == archived and o.id >= after
        )
        return iter(sorted(chosen, key=lambda o: o.id))

    def candidates(self, object_type: str, modified_since: int | None) -> Iterator[Obj]:
        """Live objects a search may match: those modified since a bound when it has one."""
        generated = self.generated.get(object_type)
        if generated is None:
            return iter(self.live(object_type))
        if modified_since is None:
            return generated.scan(0, False)
        return generated.modified_since(modified_since)

    def count(self, fragment: str, method: str | None = None) -> int:
        return sum(
            1 for m, path in self.requests if fragment in path and (method is None or m == method)
        )


# --- the HTTP side ----------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


class FakeHubSpot:
    """Runs the server in a thread: `with FakeHubSpot(portal) as server: server.base_url`."""

    def __init__(self, portal: FakePortal) -> None:
        self.portal = portal
        handler = type("Handler", (_Handler,), {"portal": portal})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeHubSpot:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, as from a real server
    portal: FakePortal

    def log_message(self, *_: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        portal = self.portal
        with portal.lock:
            portal.requests.append((method, url.path))
            fault = None
            for candidate in portal.faults:
                if candidate.remaining > 0 and candidate.path in url.path:
                    if candidate.after > 0:
                        candidate.after -= 1
                        continue
                    candidate.remaining -= 1
                    fault = candidate
                    break
        try:
            if len(self.path) > URL_MAX:
                raise ApiError(414, error_body("URI Too Long", "URI_TOO_LONG"))
            if fault is not None:
                if fault.status == 0:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                raise _fault_error(fault)
            if method == "POST" and url.path == "/oauth/v1/token":
                self._send(200, _grant(portal, raw.decode()))
                return
            auth = self.headers.get("Authorization", "").removeprefix("Bearer ")
            _check_expiry(portal, auth)
            if auth not in portal.tokens:
                raise ApiError(
                    401,
                    error_body(
                        "Authentication credentials not found. This API supports OAuth 2.0 "
                        "authentication and you can find more details at "
                        "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                        "INVALID_AUTHENTICATION",
                    ),
                )
            body = json.loads(raw) if raw else {}
            status, answer = _route(portal, method, url.path, parse_qs(url.query), body)
            self._send(status, answer)
        except ApiError as error:
            self._send(error.status, error.body, error.headers)

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        used = len(self.portal.requests)
        self.send_header("X-HubSpot-RateLimit-Daily", str(DAILY_LIMIT))
        self.send_header("X-HubSpot-RateLimit-Daily-Remaining", str(DAILY_LIMIT - used))
        self.send_header("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
        self.send_header("X-HubSpot-RateLimit-Max", "100")
        self.send_header("X-HubSpot-RateLimit-Remaining", "99")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _grant(portal: FakePortal, form: str) -> dict[str, Any]:
    """POST /oauth/v1/token, grant_type=refresh_token, with HubSpot's answers and errors."""
    fields = {name: values[0] for name, values in parse_qs(form).items()}
    with portal.lock:
        portal.token_grants.append(fields)
        if fields.get("grant_type") != "refresh_token":
            raise ApiError(400, _oauth_error("BAD_GRANT_TYPE", "missing or invalid grant type"))
        if fields.get("client_id") != portal.oauth_client[0]:
            raise ApiError(400, _oauth_error("BAD_CLIENT_ID", "missing or unknown client id"))
        if fields.get("client_secret") != portal.oauth_client[1]:
            raise ApiError(
                400, _oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret")
            )
        if fields.get("refresh_token") not in portal.refresh_tokens:
            raise ApiError(
                400, _oauth_error("BAD_REFRESH_TOKEN", "missing or invalid refresh token")
            )
        token = f"CN{uuid.uuid4().hex}{uuid.uuid4().hex}"
        portal.tokens.add(token)
        portal.token_calls[token] = (
            portal.expiring_tokens.pop(0) if portal.expiring_tokens else None
        )
        return {
            "token_type": "bearer",
            "refresh_token": fields["refresh_token"],
            "access_token": token,
            "expires_in": portal.token_lifetime,
        }


def _oauth_error(status: str, message: str) -> dict[str, Any]:
    """The OAuth endpoint's error body: its own `status` code, no category."""
    return {"status": status, "message": message, "correlationId": str(uuid.uuid4())}


def _check_expiry(portal: FakePortal, token: str) -> None:
    """An issued OAuth token past its calls answers HubSpot's EXPIRED_AUTHENTICATION 401."""
    with portal.lock:
        left = portal.token_calls.get(token)
        if left is None:
            return
        if left > 0:
            portal.token_calls[token] = left - 1
            return
        portal.expired_answers += 1
    raise ApiError(
        401,
        error_body(
            "The OAuth token used to make this call expired 0 minute(s) ago.",
            "EXPIRED_AUTHENTICATION",
        ),
    )


def _fault_error(fault: Fault) -> ApiError:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    if fault.status == 429:
        return ApiError(
            429,
            {
                "status": "error",
                "message": f"You have reached your {fault.policy.lower()} limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": fault.policy,
                "groupName": "publicapi:private-app:12345",
            },
            headers,
        )
    return ApiError(
        fault.status,
        error_body("The service is temporarily unavailable.", "SERVICE_UNAVAILABLE"),
        headers,
    )


def _route(
    portal: FakePortal, method: str, path: str, query: dict[str, list[str]], body: Any
) -> tuple[int, dict[str, Any]]:
    parts = path.strip("/").split("/")
    with portal.lock:
        if method == "GET" and parts == ["crm", "v3", "owners"]:
            return 200, _owners(portal, query)
        if method == "GET" and parts[:3] == ["crm", "v3", "pipelines"] and len(parts) == 4:
            return 200, {"results": portal.pipelines}
        if method == "GET" and parts[:3] == ["crm", "v3", "properties"] and len(parts) == 4:
            return 200, {
                "results": [d for (kind, _), d in portal.properties.items() if kind == parts[3]]
            }
        if method == "GET" and parts[:3] == ["crm", "v3", "properties"] and len(parts) == 5:
            found = portal.properties.get((parts[3], parts[4]))
            if found is None:
                raise ApiError(
                    404,
                    error_body(
                        f"Unable to find property {parts[4]} for object type {parts[3]}",
                        "OBJECT_NOT_FOUND",
                    ),
                )
            return 200, found
        if parts[:3] == ["crm", "v3", "objects"] and parts[3] in portal.objects:
            object_type = parts[3]
            if method == "GET" and len(parts) == 4:
                return 200, _list(portal, object_type, query)
            if method == "POST" and parts[4:] == ["search"]:
                return 200, _search(portal, object_type, body)
            if method == "POST" and parts[4:] == ["batch", "read"]:
                return _batch_read(portal, object_type, body)
        if (
            method == "POST"
            and parts[:3] == ["crm", "v4", "associations"]
            and parts[5:]
            == [
                "batch",
                "read",
            ]
        ):
            return _associations(portal, parts[3], parts[4], body)
    raise ApiError(404, error_body(f"Unknown resource {method} {path}", "OBJECT_NOT_FOUND"))


def _owners(portal: FakePortal, query: dict[str, list[str]]) -> dict[str, Any]:
    """GET /crm/v3/owners/: at most 500 a page, `after` an offset as HubSpot's cursor."""
    limit = min(int((query.get("limit") or ["100"])[0]), 500)
    offset = int((query.get("after") or ["0"])[0])
    page = portal.owners[offset : offset + limit]
    answer: dict[str, Any] = {"results": page}
    if offset + limit < len(portal.owners):
        following = str(offset + limit)
        answer["paging"] = {
            "next": {
                "after": following,
                "link": f"https://api.hubapi.com/crm/v3/owners/?after={following}",
            }
        }
    return answer


def _listed(query: dict[str, list[str]], name: str) -> list[str]:
    return [item for value in query.get(name, []) for item in value.split(",") if item]


def _property(obj: Obj, name: str) -> str | None:
    """A property's value; `hs_v2_date_entered_<stage id>` is when the deal last entered the
    stage (ISO 8601 with milliseconds and Z, as HubSpot sends datetimes), or null."""
    if name.startswith(DATE_ENTERED):
        stage = name.removeprefix(DATE_ENTERED)
        entered = [at for value, at in obj.history.get("dealstage", []) if value == stage]
        return iso(max(entered)) if entered else None
    return obj.properties.get(name)


def _render(
    portal: FakePortal,
    object_type: str,
    obj: Obj,
    properties: list[str],
    history: list[str] | None = None,
) -> dict[str, Any]:
    names = properties or ["createdate", MODIFIED.get(object_type, "hs_lastmodifieddate")]
    props = {name: _property(obj, name) for name in names}
    props["hs_object_id"] = str(obj.id)
    props.setdefault("createdate", obj.properties.get("createdate"))
    modified = MODIFIED.get(object_type, "hs_lastmodifieddate")
    props.setdefault(modified, obj.properties.get(modified))
    result: dict[str, Any] = {
        "id": str(obj.id),
        "properties": props,
        "createdAt": iso(obj.created),
        "updatedAt": iso(obj.modified),
        "archived": obj.archived_at is not None,
    }
    if obj.archived_at is not None:
        result["archivedAt"] = iso(obj.archived_at)
    if history:
        result["propertiesWithHistory"] = {
            name: [
                {
                    "value": value,
                    "timestamp": iso(at),
                    "sourceType": "CRM_UI",
                    "sourceId": "userId:1234",
                    "updatedByUserId": 1234,
                }
                for value, at in reversed(obj.history.get(name, []))
            ]
            for name in history
        }
    return result


def _list(portal: FakePortal, object_type: str, query: dict[str, list[str]]) -> dict[str, Any]:
    limit = min(int((query.get("limit") or ["10"])[0]), 100)
    after = int((query.get("after") or ["0"])[0])
    archived = (query.get("archived") or ["false"])[0].lower() == "true"
    properties = _listed(query, "properties")
    history = _listed(query, "propertiesWithHistory")
    if history:
        limit = min(limit, 50)
    chosen = list(islice(portal.scan(object_type, after, archived), limit + 1))
    page = chosen[:limit]
    answer: dict[str, Any] = {
        "results": [_render(portal, object_type, o, properties, history) for o in page]
    }
    if len(chosen) > limit:
        following = str(chosen[limit].id)
        answer["paging"] = {
            "next": {
                "after": following,
                "link": f"https://api.hubapi.com/crm/v3/objects/{object_type}?after={following}",
            }
        }
    return answer


def _value(obj: Obj, name: str) -> Any:
    if name == "hs_object_id":
        return obj.id
    if name in ("hs_lastmodifieddate", "lastmodifieddate"):
        return obj.modified_ms
    raw = obj.properties.get(name)
    if raw is None:
        return None
    if len(raw) > 10 and raw[4] == "-" and "T" in raw:
        return ms(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    try:
        return float(raw)
    except ValueError:
        return raw.casefold()


def _operand(value: Any) -> Any:
    text = str(value)
    try:
        return float(text)
    except ValueError:
        return text.casefold()


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq,
    "NEQ": operator.ne,
    "GT": operator.gt,
    "GTE": operator.ge,
    "LT": operator.lt,
    "LTE": operator.le,
}


def _predicate(flt: dict[str, Any]) -> Callable[[Obj], bool]:
    """One search filter, compiled."""
    name, kind = flt["propertyName"], flt["operator"]
    if name == "hs_object_id":
        get: Callable[[Obj], Any] = operator.attrgetter("id")
    elif name in ("hs_lastmodifieddate", "lastmodifieddate"):
        get = operator.attrgetter("modified_ms")
    else:
        get = partial(_value, name=name)
    if kind == "HAS_PROPERTY":
        return lambda o: get(o) is not None
    if kind == "NOT_HAS_PROPERTY":
        return lambda o: get(o) is None
    if kind == "IN":
        wanted = {_operand(v) for v in flt.get("values", [])}
        return lambda o: get(o) in wanted
    compare, want = _COMPARE[kind], _operand(flt.get("value"))

    def test(o: Obj) -> bool:
        have = get(o)
        if have is None:
            return kind == "NEQ"
        try:
            return compare(have, want)
        except TypeError:
            return False

    return test


def _modified_since(object_type: str, groups: list[dict[str, Any]]) -> int | None:
    """The lowest last-modified bound every filter group sets, if they all set one."""
    name = MODIFIED.get(object_type, "hs_lastmodifieddate")
    bounds = []
    for group in groups:
        lows = [
            int(float(f["value"]))
            for f in group.get("filters", [])
            if f.get("propertyName") == name and f.get("operator") in ("GT", "GTE")
        ]
        if not lows:
            return None
        bounds.append(max(lows))
    return min(bounds) if bounds else None


def _search(portal: FakePortal, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
    limit = int(body.get("limit") or 10)
    if limit > 200:
        raise ApiError(400, error_body("limit must be at most 200", "VALIDATION_ERROR"))
    after = int(body.get("after") or 0)
    if after + limit > SEARCH_CAP:
        raise ApiError(
            400,
            error_body(
                "There was a problem with the request.",
                "VALIDATION_ERROR",
                errors=[{"message": "Search results are limited to 10,000; narrow the search."}],
            ),
        )
    filter_groups = body.get("filterGroups") or []
    groups = [[_predicate(f) for f in g.get("filters", [])] for g in filter_groups]
    found = [
        o
        for o in portal.candidates(object_type, _modified_since(object_type, filter_groups))
        if not groups or any(all(test(o) for test in group) for group in groups)
    ]
    for sort in reversed(body.get("sorts") or [{"propertyName": "hs_object_id"}]):
        name = sort["propertyName"]
        key: Callable[[Obj], Any] = (
            operator.attrgetter("id")
            if name == "hs_object_id"
            else lambda o, name=name: (_value(o, name) is None, _value(o, name) or 0)
        )
        found.sort(key=key, reverse=sort.get("direction") == "DESCENDING")
    page = found[after : after + limit]
    answer: dict[str, Any] = {
        "total": len(found),
        "results": [_render(portal, object_type, o, body.get("properties") or []) for o in page],
    }
    if after + limit < len(found):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


def _batch_read(
    portal: FakePortal, object_type: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    inputs = body.get("inputs") or []
    history = body.get("propertiesWithHistory") or []
    most = 50 if history else 100
    if len(inputs) > most:
        raise ApiError(
            400,
            error_body(
                f"Batch input size {len(inputs)} exceeds the limit of {most}",
                "VALIDATION_ERROR",
            ),
        )
    started = iso(portal.now)
    results, missing = [], []
    for item in inputs:
        obj = portal.lookup(object_type, int(item["id"]))
        if obj is None or obj.archived_at is not None:
            missing.append(str(item["id"]))
            continue
        results.append(_render(portal, object_type, obj, body.get("properties") or [], history))
    answer: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": started,
    }
    if missing:
        answer["numErrors"] = 1
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some CRM objects, they may be deleted or not exist.",
                "context": {"ids": missing},
            }
        ]
        return 207, answer
    return 200, answer


def _associations(
    portal: FakePortal, from_type: str, to_type: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    inputs = body.get("inputs") or []
    if len(inputs) > 1000:
        raise ApiError(400, error_body("At most 1000 inputs", "VALIDATION_ERROR"))
    links = portal.links.get((from_type, to_type), {})
    size = portal.association_page_size
    results, empty = [], []
    for item in inputs:
        from_id = int(item["id"])
        live = [
            a
            for a in links.get(from_id, [])
            if (o := portal.lookup(to_type, a.to_id)) is not None and o.archived_at is None
        ]
        if not live:
            empty.append(str(from_id))
            continue
        offset = int(item.get("after") or 0)
        page = live[offset : offset + size]
        result: dict[str, Any] = {
            "from": {"id": str(from_id)},
            "to": [
                {
                    "toObjectId": a.to_id,
                    "associationTypes": [
                        {"category": c, "typeId": t, "label": label} for c, t, label in a.types
                    ],
                }
                for a in page
            ],
        }
        if offset + size < len(live):
            result["paging"] = {"next": {"after": str(offset + size), "link": None}}
        results.append(result)
    now = iso(portal.now)
    answer: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": now,
        "completedAt": now,
    }
    if empty:
        answer["numErrors"] = len(empty)
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {to_type} is associated with {from_type[:-1]} {i}.",
                "context": {"fromObjectId": [i]},
            }
            for i in empty
        ]
        return 207, answer
    return 200, answer


def objects_of(portal: FakePortal, object_type: str) -> Iterator[Obj]:
    yield from portal.live(object_type)

"""HubSpot's CRM APIs as the sync uses them, through hubspot-api-client.

The SDK's API classes are built once per run, pointed at app.yaml's `hubspot.base_url` (the
SDK's `host` setting) and authenticated with the private app token of HUBSPOT_ACCESS_TOKEN, or
with the OAuth access token `connectors.hubspot.auth` renews (`tokens_api.create`), which is
set on every API class's configuration when it changes.
Responses are read as HubSpot's own JSON (`_preload_content=False`), which keeps the wire
names (`paging.next.after`, `propertiesWithHistory`) and skips the SDK's model building.

Every request first waits for the client-side `RateLimiter`, is counted in the `ApiBudget`
(whose daily allowance comes from HubSpot's X-HubSpot-RateLimit-Daily headers), and is retried
with `RetryPolicy`: a 429 after its Retry-After, 500/502/503/504 and network faults with
backoff and jitter, for POST (search, batch reads) as for GET. A 429 for the daily limit
(policyName DAILY) stops the sync at once. Every request has connect and read timeouts
(app.yaml `hubspot.connect_timeout_seconds`, `read_timeout_seconds`). urllib3's own retries are off,
so nothing is retried twice. A refused token or a missing scope becomes one sentence with
HubSpot's error category and the scopes the app needs; the token never appears in a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import urllib3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from connectors.errors import SourceError
from connectors.hubspot.auth import (
    REFRESH_TOKEN_ENV,
    SCOPES,
    TOKEN_ENV,
    OAuthApp,
    OAuthToken,
    credentials_from_env,
    refresh_refused,
)
from connectors.hubspot.limiter import RateLimiter
from connectors.incremental import ApiBudget, RetryPolicy, StopSync
from settings.crm import HubSpotConfig

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
BATCH_READ_MAX = 100  # ids per batch read
HISTORY_READ_MAX = 50  # ids per batch read with propertiesWithHistory
ASSOCIATION_READ_MAX = 1000  # ids per v4 association batch read
URL_PROPERTIES_MAX = 3000  # characters of `&properties=name` a list request puts in its URL

JsonObject = dict[str, Any]


class HubSpotRequestError(SourceError):
    """HubSpot refused a request; the message carries its error category."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenRefused(HubSpotRequestError):
    """HubSpot refused the access token, or it lacks a scope."""


class HttpFault(Exception):
    """A non-2xx answer: its status, Retry-After and HubSpot's error body."""

    def __init__(self, status: int, body: JsonObject, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def category(self) -> str:
        return str(self.body.get("category") or self.body.get("errorType") or "")

    @property
    def daily_limit(self) -> bool:
        """A 429 for the daily allowance (policyName DAILY): no retry helps until tomorrow."""
        return self.status == 429 and self.body.get("policyName") == "DAILY"


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, HttpFault):
        return error.status in RETRIED_STATUSES and not error.daily_limit
    return isinstance(error, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _retry_after(error: BaseException) -> float | None:
    return error.retry_after if isinstance(error, HttpFault) else None


class HubSpotApi:
    def __init__(
        self,
        settings: HubSpotConfig,
        env: Mapping[str, str],
        budget: ApiBudget,
        limiter: RateLimiter,
        retry: RetryPolicy,
        clock: Callable[[], float] | None = None,
    ) -> None:
        credentials = credentials_from_env(env)
        self.budget = budget
        self.limiter = limiter
        self.retry = retry
        self.retried = 0  # answers and faults that were retried
        # Every SDK call returns the raw urllib3 response, within (connect, read) timeouts.
        self._raw: dict[str, Any] = {
            "_preload_content": False,
            "_request_timeout": (settings.connect_timeout_seconds, settings.read_timeout_seconds),
        }
        client = HubSpot(
            access_token=credentials if isinstance(credentials, str) else None,
            host=settings.base_url,
            retry=Retry(total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False),
        )
        crm = client.crm
        self._basic = crm.objects.basic_api
        self._search = crm.objects.search_api
        self._batch = crm.objects.batch_api
        self._pipelines = crm.pipelines.pipelines_api
        self._properties = crm.properties.core_api
        self._associations = crm.associations.v4.batch_api
        self._owners = crm.owners.owners_api
        self._apis = (
            self._basic,
            self._search,
            self._batch,
            self._pipelines,
            self._properties,
            self._associations,
            self._owners,
        )
        self.oauth: OAuthToken | None = None
        if isinstance(credentials, OAuthApp):
            self._tokens = client.oauth.tokens_api
            self.oauth = OAuthToken(credentials, self._request_token, clock or limiter.clock)

    # --- resources ------------------------------------------------------------------------

    def list_page(
        self,
        object_type: str,
        properties: Sequence[str],
        after: str | None,
        limit: int,
        archived: bool = False,
    ) -> JsonObject:
        """One page of GET /crm/v3/objects/{type} (`archived=true`: the archived ones).

        Properties that would make the URL over-long are read by a batch read of the page's
        ids (POST body) and merged into its results by id."""
        in_url, rest = split_for_url(properties)
        options: dict[str, Any] = {"limit": limit, "archived": archived}
        if in_url:
            options["properties"] = in_url
        if after:
            options["after"] = after
        page = self.call(lambda: self._basic.get_page(object_type, **options, **self._raw))
        results = page.get("results") or []
        if rest and results:
            ids = [str(row["id"]) for row in results]
            read = {str(r["id"]): r for r in self.batch_read(object_type, ids, rest)}
            for row in results:
                extra = (read.get(str(row["id"])) or {}).get("properties") or {}
                row.setdefault("properties", {}).update({name: extra.get(name) for name in rest})
        return page

    def list_pages(
        self, object_type: str, properties: Sequence[str], limit: int, archived: bool = False
    ) -> Iterator[list[JsonObject]]:
        """Every page of the list endpoint, following paging.next.after to its end."""
        after: str | None = None
        while True:
            page = self.list_page(object_type, properties, after, limit, archived)
            yield list(page.get("results", []))
            after = next_after(page)
            if after is None:
                return

    def search(self, object_type: str, request: JsonObject) -> JsonObject:
        """POST /crm/v3/objects/{type}/search."""
        return self.call(
            lambda: self._search.do_search(object_type, request, **self._raw), search=True
        )

    def batch_read(
        self,
        object_type: str,
        ids: Sequence[str],
        properties: Sequence[str],
        history: Sequence[str] = (),
    ) -> list[JsonObject]:
        """The objects with these ids (chunked: 100 per request, 50 with history)."""
        size = HISTORY_READ_MAX if history else BATCH_READ_MAX
        found: list[JsonObject] = []
        for start in range(0, len(ids), size):
            body: JsonObject = {
                "inputs": [{"id": i} for i in ids[start : start + size]],
                "properties": list(properties),
                "propertiesWithHistory": list(history),
            }
            result = self.call(partial(self._batch.read, object_type, body, **self._raw))
            found.extend(result.get("results", []))
        return found

    def pipelines(self, object_type: str) -> list[JsonObject]:
        result = self.call(lambda: self._pipelines.get_all(object_type, **self._raw))
        return list(result.get("results", []))

    def properties(self, object_type: str) -> dict[str, JsonObject]:
        """The definitions of the object's properties (options included), by name."""
        result = self.call(lambda: self._properties.get_all(object_type, **self._raw))
        return {str(p["name"]): p for p in result.get("results", [])}

    def owners(self, limit: int) -> dict[str, str]:
        """Every active owner's email by owner id (GET /crm/v3/owners/, every page)."""
        emails: dict[str, str] = {}
        after: str | None = None
        while True:
            options: dict[str, Any] = {"limit": limit, "archived": False}
            if after:
                options["after"] = after
            page = self.call(partial(self._owners.get_page, **options, **self._raw))
            for owner in page.get("results") or []:
                if owner.get("email"):
                    emails[str(owner["id"])] = str(owner["email"])
            after = next_after(page)
            if after is None:
                return emails

    def associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> dict[str, list[tuple[str, set[int]]]]:
        """Each id's associated objects with their association type ids, every page of them
        (v4 batch read, following each result's own paging.next.after)."""
        found: dict[str, list[tuple[str, set[int]]]] = {}
        pending: list[JsonObject] = [{"id": i} for i in dict.fromkeys(ids)]
        while pending:
            batch, pending = pending[:ASSOCIATION_READ_MAX], pending[ASSOCIATION_READ_MAX:]
            body = {"inputs": batch}
            result = self.call(
                partial(self._associations.get_page, from_type, to_type, body, **self._raw)
            )
            for item in result.get("results", []):
                from_id = str(item["from"]["id"])
                targets = found.setdefault(from_id, [])
                for to in item.get("to", []):
                    types = {int(t["typeId"]) for t in to.get("associationTypes", [])}
                    targets.append((str(to["toObjectId"]), types))
                after = next_after(item)
                if after is not None:
                    pending.append({"id": from_id, "after": after})
        return found

    # --- calls ----------------------------------------------------------------------------

    def call(self, request: Callable[[], Any], search: bool = False) -> JsonObject:
        """One request with the limiter, the budget, retries and clear errors; with OAuth, a
        token renewed when it is due, and once more when HubSpot answers 401 to it."""
        try:
            if self.oauth is not None and self.oauth.due:
                self._use_token(self.oauth.refresh())
            try:
                return self._retrying(request, search)
            except HttpFault as fault:
                if fault.status != 401 or self.oauth is None:
                    raise
                self._use_token(self.oauth.refresh())
                return self._retrying(request, search)
        except HttpFault as fault:
            raise self._translate(fault) from None
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", None) or error
            if isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
                raise SourceError(
                    f"HubSpot did not answer within hubspot.connect_timeout_seconds "
                    f"({self._raw['_request_timeout'][0]:g} s) and read_timeout_seconds "
                    f"({self._raw['_request_timeout'][1]:g} s) in {self.retry.attempts} "
                    "attempts; the next sync resumes where this one stopped."
                ) from None
            raise SourceError(
                f"HubSpot did not answer after {self.retry.attempts} attempts "
                f"({type(reason).__name__}); the next sync resumes where this one stopped."
            ) from None

    def _retrying(self, request: Callable[[], Any], search: bool) -> JsonObject:
        return self.retry.run(lambda: self._attempt(request, search), self._retryable, _retry_after)

    def _request_token(self, app: OAuthApp) -> JsonObject:
        """POST /oauth/v1/token with the refresh token, form-encoded (its answer is never
        logged: the SDK logs bodies only of responses it preloads)."""
        create = partial(
            self._tokens.create,
            grant_type="refresh_token",
            client_id=app.client_id,
            client_secret=app.client_secret,
            refresh_token=app.refresh_token,
            **self._raw,
        )
        try:
            return self._retrying(create, False)
        except HttpFault as fault:
            if fault.status in RETRIED_STATUSES:
                raise
            raise refresh_refused(fault.status, fault.body, app) from None

    def _use_token(self, token: str) -> None:
        for api in self._apis:
            api.api_client.configuration.access_token = token

    def _retryable(self, error: BaseException) -> bool:
        transient = _is_transient(error)
        if transient:
            self.retried += 1
        return transient

    def _attempt(self, request: Callable[[], Any], search: bool) -> JsonObject:
        self.budget.check()
        self.limiter.acquire(search)
        self.budget.record_call()
        try:
            response = request()
        except Exception as error:
            http = getattr(error, "status", None)
            if isinstance(http, int) and http > 0:
                raise _fault(error) from None
            raise
        self._observe(response.headers)
        data = response.data
        return dict(json.loads(data)) if data else {}

    def _observe(self, headers: Any) -> None:
        daily = headers.get("X-HubSpot-RateLimit-Daily")
        remaining = headers.get("X-HubSpot-RateLimit-Daily-Remaining")
        if daily and remaining and daily.isdigit() and remaining.isdigit():
            self.budget.observe(int(daily) - int(remaining), int(daily))

    def _translate(self, fault: HttpFault) -> Exception:
        category = fault.category or f"HTTP {fault.status}"
        message = str(fault.body.get("message", "")).strip()
        scopes = ", ".join(SCOPES)
        if fault.status == 401 and self.oauth is not None:
            return TokenRefused(
                f"HubSpot refused the OAuth access token renewed from {REFRESH_TOKEN_ENV} "
                f"({category}); authorize the app again with the scopes {scopes}."
            )
        if fault.status == 401:
            return TokenRefused(
                f"HubSpot refused the access token in {TOKEN_ENV} ({category}); set it to a "
                f"private app's token with the scopes {scopes}."
            )
        if fault.status == 403:
            return TokenRefused(
                f"HubSpot refused a request for lack of permission ({category}"
                f"{': ' + message if message else ''}); give the app the scopes {scopes}."
            )
        if fault.daily_limit:
            return StopSync(
                "HubSpot refused further calls for the portal's daily API limit (policyName "
                "DAILY); the next sync resumes where this one stopped"
            )
        if fault.status == 429:
            return StopSync(
                f"HubSpot kept refusing calls for its rate limits ({category}) after "
                f"{self.retry.attempts} attempts; the next sync resumes where this one stopped"
            )
        if fault.status in RETRIED_STATUSES:
            return SourceError(
                f"HubSpot kept failing (HTTP {fault.status}) after {self.retry.attempts} "
                "attempts; the next sync resumes where this one stopped."
            )
        return HubSpotRequestError(
            f"HubSpot refused a request ({category}){': ' + message if message else ''}.",
            fault.status,
        )


def split_for_url(properties: Sequence[str]) -> tuple[list[str], list[str]]:
    """The properties that fit a list request's URL (in order), and the rest."""
    in_url: list[str] = []
    length = 0
    for n, name in enumerate(properties):
        length += len("&properties=") + len(name)
        if length > URL_PROPERTIES_MAX:
            return in_url, list(properties[n:])
        in_url.append(name)
    return in_url, []


def next_after(result: Mapping[str, Any]) -> str | None:
    """The `paging.next.after` of a list, search or association result, if there is one."""
    paging = result.get("paging") or {}
    following = paging.get("next") or {}
    after = following.get("after")
    return str(after) if after not in (None, "") else None


def _fault(error: Any) -> HttpFault:
    body: JsonObject = {}
    raw = getattr(error, "body", None)
    if raw:
        try:
            parsed = json.loads(raw)
            body = parsed if isinstance(parsed, dict) else {}
        except (ValueError, TypeError):
            body = {}
    headers = getattr(error, "headers", None) or {}
    retry_after: float | None = None
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is not None:
        try:
            retry_after = float(value)
        except ValueError:
            retry_after = None
    return HttpFault(int(error.status), body, retry_after)

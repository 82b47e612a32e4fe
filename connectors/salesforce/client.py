"""The Salesforce REST API as the sync uses it, over simple-salesforce: describe, SOQL pages
through `nextRecordsUrl`, and the deleted-records resource.

Every response, and every request that got none, is counted and `Sforce-Limit-Info` read into
the `ApiBudget`, which stops the sync before it spends its share of the daily allowance. Every
request has connect and read timeouts (app.yaml `salesforce.connect_timeout_seconds`,
`read_timeout_seconds`). Network faults and 5xx answers are
retried with backoff; an expired session (INVALID_SESSION_ID) logs in again once; Salesforce's
errors become one sentence with its error code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote_plus

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
)

from connectors.errors import SourceError
from connectors.incremental import ApiBudget, RetryPolicy, StopSync
from connectors.salesforce.auth import SalesforceSession, login
from settings.crm import SalesforceConfig
from settings.secrets import Secrets

T = TypeVar("T")
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class QueryTimeout(SourceError):
    """Salesforce gave up on a query (QUERY_TIMEOUT); a narrower one may succeed."""


class UriTooLong(SourceError):
    """Salesforce (or a proxy before it) refused the request's URI as too long (HTTP 414)."""


class SalesforceRequestError(SourceError):
    """Salesforce refused a request; the message carries its error code."""


class NotFound(SalesforceRequestError):
    """The resource does not exist for this user (NOT_FOUND): e.g. an object it cannot see."""


def error_code(error: SalesforceError) -> str | None:
    """The `errorCode` of Salesforce's error body `[{"message": ..., "errorCode": ...}]`."""
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode"))
    return None


def error_message(error: SalesforceError) -> str:
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("message", "")).strip()
    return ""


def is_transient(error: BaseException) -> bool:
    """A fault worth retrying: the network, or Salesforce answering 5xx."""
    if isinstance(error, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(error, requests.exceptions.ChunkedEncodingError | requests.JSONDecodeError):
        return True
    return isinstance(error, SalesforceGeneralError) and error.status >= 500


class SalesforceApi:
    def __init__(
        self,
        settings: SalesforceConfig,
        budget: ApiBudget,
        retry: RetryPolicy | None = None,
        env: Mapping[str, str] | None = None,
        http: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.env = Secrets().environment() if env is None else env
        self.http = http or requests.Session()
        timeouts = TimeoutAdapter((settings.connect_timeout_seconds, settings.read_timeout_seconds))
        for prefix in ("https://", "http://"):
            self.http.mount(prefix, timeouts)
        self.http.hooks["response"].append(self._observe)
        self.session: SalesforceSession | None = None
        self._client: Salesforce | None = None
        self.logins = 0

    # --- session --------------------------------------------------------------------------

    def connect(self) -> None:
        """Logs in (again) and builds the simple-salesforce client on the new session."""
        self.session = self.retry.run(
            lambda: login(self.settings, self.env, self.http), is_transient
        )
        self.logins += 1
        self._client = Salesforce(
            session_id=self.session.session_id,
            instance=self.session.instance,
            version=self.settings.api_version,
            session=self.http,
        )

    @property
    def client(self) -> Salesforce:
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    def _observe(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self.budget.record_call()
        usage = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if usage:
            self.budget.observe(int(usage.group(1)), int(usage.group(2)))

    # --- resources ------------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        result = self.call(lambda sf: sf.restful(f"sobjects/{sobject}/describe"))
        return dict(result or {})

    def query_pages(self, soql: str, include_deleted: bool = False) -> Iterator[list[Any]]:
        """The query's records, one page (up to page_size) at a time, through nextRecordsUrl."""
        headers = {"Sforce-Query-Options": f"batchSize={self.settings.page_size}"}
        result = self.call(
            lambda sf: sf.query(soql, include_deleted=include_deleted, headers=headers)
        )
        while True:
            yield list(result["records"])
            if result.get("done", True) or not result.get("nextRecordsUrl"):
                return
            result = self.call(partial(_more, url=result["nextRecordsUrl"], headers=headers))

    def query_url_length(self, soql: str, include_deleted: bool = False) -> int:
        """The length of the query's URI (path and query string) as requests encodes it."""
        resource = "queryAll" if include_deleted else "query"
        path = f"/services/data/v{self.settings.api_version}/{resource}/?q="
        return len(path) + len(quote_plus(soql))

    def deleted(self, sobject: str, start: datetime, end: datetime) -> dict[str, Any]:
        """The deleted-records resource (getDeleted) over [start, end]."""
        params = {"start": _iso(start), "end": _iso(end)}
        result = self.call(lambda sf: sf.restful(f"sobjects/{sobject}/deleted/", params=params))
        return dict(result or {})

    # --- calls ----------------------------------------------------------------------------

    def call(self, request: Callable[[Salesforce], T]) -> T:
        """Runs one API request with the budget check, retries, one re-login and clear errors."""
        logged_in_again = False
        while True:
            try:
                return self.retry.run(lambda: self._attempt(request), is_transient)
            except SalesforceExpiredSession:
                if logged_in_again or self.session is None or self.session.method == "token":
                    raise SalesforceRequestError(
                        "Salesforce ended the session (INVALID_SESSION_ID) and a new login did "
                        "not help; for the access-token login set a fresh SALESFORCE_ACCESS_TOKEN."
                    ) from None
                logged_in_again = True
                self.connect()
            except SalesforceError as error:
                raise self._translate(error) from None
            except requests.Timeout:
                raise SourceError(
                    "Salesforce did not answer within salesforce.connect_timeout_seconds "
                    f"({self.settings.connect_timeout_seconds:g} s) and read_timeout_seconds "
                    f"({self.settings.read_timeout_seconds:g} s) in {self.retry.attempts} "
                    "attempts; the next sync resumes where this one stopped."
                ) from None
            except requests.RequestException as error:
                raise SourceError(
                    f"Salesforce did not answer after {self.retry.attempts} attempts "
                    f"({type(error).__name__}); the next sync resumes where this one stopped."
                ) from None

    def _attempt(self, request: Callable[[Salesforce], T]) -> T:
        self.budget.check()
        try:
            return request(self.client)
        except requests.RequestException as error:
            if error.response is None:  # sent, perhaps counted by Salesforce, never answered
                self.budget.record_call()
            raise

    def _translate(self, error: SalesforceError) -> Exception:
        code = error_code(error) or f"HTTP {error.status}"
        if code == "REQUEST_LIMIT_EXCEEDED":
            return StopSync(
                "Salesforce refused further calls (REQUEST_LIMIT_EXCEEDED): the org's API "
                "allowance is spent; the next sync resumes where this one stopped"
            )
        if error.status == 414:
            return UriTooLong("Salesforce refused a query's URI as too long (HTTP 414).")
        if code == "QUERY_TIMEOUT":
            return QueryTimeout(f"Salesforce timed out a query ({code}).")
        if is_transient(error):
            return SourceError(
                f"Salesforce kept failing ({code}) after {self.retry.attempts} attempts; "
                "the next sync resumes where this one stopped."
            )
        detail = error_message(error)
        kind = NotFound if code == "NOT_FOUND" else SalesforceRequestError
        return kind(f"Salesforce refused a request ({code}){': ' + detail if detail else ''}.")


class TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Gives every request without a timeout of its own these (connect, read) timeouts:
    neither simple-salesforce nor requests sets one, so a silent server would hang the sync."""

    def __init__(self, timeouts: tuple[float, float]) -> None:
        super().__init__()
        self.timeouts = timeouts

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.timeouts if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=dict(proxies) if proxies is not None else None,
        )


def _more(sf: Salesforce, url: str, headers: dict[str, str]) -> Any:
    return sf.query_more(url, identifier_is_url=True, headers=headers)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"

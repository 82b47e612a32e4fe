"""HubSpot credentials from the environment, and the OAuth access token they renew.

Either a private app's access token (HUBSPOT_ACCESS_TOKEN, used as it is), or an OAuth app's
HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET and HUBSPOT_REFRESH_TOKEN: the access token then
comes from POST /oauth/v1/token (grant_type=refresh_token, form-encoded) and is renewed a
minute before its `expires_in` runs out, or once when HubSpot answers 401 to it. A private app
token wins when both are set. No secret ever appears in a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import SourceError

TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"  # noqa: S105 - the variable's name, not a secret
CLIENT_ID_ENV = "HUBSPOT_CLIENT_ID"
CLIENT_SECRET_ENV = "HUBSPOT_CLIENT_SECRET"  # noqa: S105
REFRESH_TOKEN_ENV = "HUBSPOT_REFRESH_TOKEN"  # noqa: S105
OAUTH_ENVS = (CLIENT_ID_ENV, CLIENT_SECRET_ENV, REFRESH_TOKEN_ENV)
SCOPES = (
    "crm.objects.companies.read",
    "crm.objects.contacts.read",
    "crm.objects.deals.read",
    "crm.schemas.companies.read",
    "crm.schemas.deals.read",
    "crm.objects.owners.read",
    "tickets",
)
EXPIRY_MARGIN = 60.0  # seconds before `expires_in` runs out that a token is renewed


@dataclass(frozen=True)
class OAuthApp:
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)

    def secrets(self) -> tuple[str, ...]:
        return (self.client_id, self.client_secret, self.refresh_token)


def credentials_from_env(env: Mapping[str, str]) -> str | OAuthApp:
    """A private app's token, or the OAuth app the three OAuth variables describe."""
    token = (env.get(TOKEN_ENV) or "").strip()
    if token:
        return token
    given = {name: (env.get(name) or "").strip() for name in OAUTH_ENVS}
    missing = [name for name, value in given.items() if not value]
    if not missing:
        return OAuthApp(*given.values())
    scopes = ", ".join(SCOPES)
    if len(missing) < len(OAUTH_ENVS):
        raise SourceError(
            f"set {' and '.join(missing)} as well for HubSpot's OAuth refresh-token flow "
            f"(or {TOKEN_ENV} to a private app's access token with the scopes {scopes})."
        )
    raise SourceError(
        f"set {TOKEN_ENV} to the access token of a HubSpot private app with the scopes "
        f"{scopes}, or {', '.join(OAUTH_ENVS[:2])} and {REFRESH_TOKEN_ENV} for an OAuth app."
    )


class RefreshRefused(SourceError):
    """HubSpot would not give an access token for the refresh token."""


class OAuthToken:
    """The current OAuth access token; `request(app)` asks HubSpot's token endpoint for a new
    one and answers its JSON (raising RefreshRefused when HubSpot says no)."""

    def __init__(
        self,
        app: OAuthApp,
        request: Callable[[OAuthApp], Mapping[str, Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.request = request
        self.clock = clock
        self.value: str | None = None
        self.renew_at = 0.0
        self.refreshes = 0

    @property
    def due(self) -> bool:
        return self.value is None or self.clock() >= self.renew_at

    def refresh(self) -> str:
        answer = self.request(self.app)
        token = str(answer.get("access_token") or "")
        if not token:
            raise RefreshRefused("HubSpot's token endpoint answered without an access token.")
        lifetime = float(answer.get("expires_in") or 0)
        self.renew_at = self.clock() + lifetime - min(EXPIRY_MARGIN, lifetime / 2)
        renewed = str(answer.get("refresh_token") or "")
        if renewed and renewed != self.app.refresh_token:  # kept for this run only
            self.app = OAuthApp(self.app.client_id, self.app.client_secret, renewed)
        self.value = token
        self.refreshes += 1
        return token


def refresh_refused(status: int, body: Mapping[str, Any], app: OAuthApp) -> RefreshRefused:
    """HubSpot's answer to a refused refresh as one sentence, its own status and message in
    it (`BAD_REFRESH_TOKEN: missing or invalid refresh token`), the secrets kept out."""
    code = str(body.get("status") or "")
    if not code or code == "error":
        code = str(body.get("category") or f"HTTP {status}")
    message = str(body.get("message") or "").strip().rstrip(".")
    for secret in app.secrets():
        message = message.replace(secret, "…")
    return RefreshRefused(
        f"HubSpot refused to renew the OAuth access token ({code}"
        f"{': ' + message if message else ''}); authorize the app again and set "
        f"{REFRESH_TOKEN_ENV} to its new refresh token, with {CLIENT_ID_ENV} and "
        f"{CLIENT_SECRET_ENV} from the same app."
    )

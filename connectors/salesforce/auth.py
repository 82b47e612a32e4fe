"""Logging in to Salesforce through simple-salesforce, with secrets from the environment only.

Methods: `password` (username + password + security token, SOAP login at the login domain),
`jwt` (OAuth 2.0 JWT bearer: consumer key + private key file + username), `client_credentials`
(consumer key + secret; needs a My Domain) and `token` (an existing access token plus
`instance_url`). Without `auth` in app.yaml, the method is chosen from the variables that are
set, in the order token, jwt, password, client_credentials. Secrets never appear in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import SalesforceLogin

from connectors.errors import SourceError
from settings.crm import SalesforceConfig

USERNAME = "SALESFORCE_USERNAME"
PASSWORD = "SALESFORCE_PASSWORD"  # noqa: S105 - the variable's name, not a secret
SECURITY_TOKEN = "SALESFORCE_SECURITY_TOKEN"  # noqa: S105
CONSUMER_KEY = "SALESFORCE_CONSUMER_KEY"
CONSUMER_SECRET = "SALESFORCE_CONSUMER_SECRET"  # noqa: S105
PRIVATE_KEY_FILE = "SALESFORCE_PRIVATE_KEY_FILE"
ACCESS_TOKEN = "SALESFORCE_ACCESS_TOKEN"  # noqa: S105

#: Each method's label in messages and the variables it needs.
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "token": ("access-token", (ACCESS_TOKEN,)),
    "jwt": ("JWT bearer", (USERNAME, CONSUMER_KEY, PRIVATE_KEY_FILE)),
    "password": ("username-password", (USERNAME, PASSWORD)),
    "client_credentials": ("client-credentials", (CONSUMER_KEY, CONSUMER_SECRET)),
}


@dataclass(frozen=True)
class SalesforceSession:
    session_id: str
    instance: str  # host[:port] of the org's REST API
    method: str


class LoginRefused(SourceError):
    """Salesforce refused the credentials; the message names the method and the error code."""


def choose_method(settings: SalesforceConfig, env: Mapping[str, str]) -> str:
    if settings.auth is not None:
        return settings.auth
    for method, (_, needed) in METHODS.items():
        if all(env.get(name) for name in needed):
            return method
    raise SourceError(
        "no Salesforce credentials in the environment; set SALESFORCE_USERNAME, "
        "SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN (or another method's variables, "
        "see the README)."
    )


def login(
    settings: SalesforceConfig, env: Mapping[str, str], http: requests.Session
) -> SalesforceSession:
    """Logs in with the configured or detected method; raises LoginRefused or SourceError."""
    method = choose_method(settings, env)
    label, needed = METHODS[method]
    missing = [name for name in needed if not env.get(name)]
    if missing:
        raise SourceError(f"the Salesforce {label} login needs {', '.join(missing)} to be set.")
    try:
        session_id, instance = _login(method, settings, env, http)
    except SalesforceAuthenticationFailed as error:
        raise LoginRefused(
            f"Salesforce refused the {label} login ({error.code}); check the SALESFORCE_* "
            f"variables and salesforce.domain ({settings.domain}) in app.yaml."
        ) from None
    except requests.RequestException as error:
        raise SourceError(
            f"cannot reach Salesforce to log in ({type(error).__name__}); check "
            f"salesforce.domain ({settings.domain}) and the network."
        ) from None
    except OSError:
        raise SourceError(
            f"cannot read the private key file that {PRIVATE_KEY_FILE} names."
        ) from None
    return SalesforceSession(str(session_id), str(instance), method)


def _login(
    method: str, settings: SalesforceConfig, env: Mapping[str, str], http: requests.Session
) -> tuple[str, str]:
    domain = settings.domain
    if method == "token":
        if not settings.instance_url:
            raise SourceError(
                "the Salesforce access-token login needs salesforce.instance_url in app.yaml."
            )
        return env[ACCESS_TOKEN], instance_of(settings.instance_url)
    if method == "password":
        result: tuple[str, str] = SalesforceLogin(
            username=env[USERNAME],
            password=env[PASSWORD],
            security_token=env.get(SECURITY_TOKEN, ""),
            sf_version=settings.api_version,
            session=http,
            domain=domain,
        )
    elif method == "jwt":
        result = SalesforceLogin(
            username=env[USERNAME],
            consumer_key=env[CONSUMER_KEY],
            privatekey_file=env[PRIVATE_KEY_FILE],
            session=http,
            domain=domain,
        )
    else:
        result = SalesforceLogin(
            consumer_key=env[CONSUMER_KEY],
            consumer_secret=env[CONSUMER_SECRET],
            session=http,
            domain=domain,
        )
    return result


def instance_of(url: str) -> str:
    """`https://acme.my.salesforce.com/` → `acme.my.salesforce.com` (with a port if any)."""
    parsed = urlparse(url if "//" in url else f"https://{url}")
    host = parsed.hostname or ""
    return f"{host}:{parsed.port}" if parsed.port not in (None, 443) else host

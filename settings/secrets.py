"""The secrets partner-kpi reads, from the environment only (never from app.yaml).

`Secrets()` reads them through pydantic-settings; each is a `SecretStr`, so a repr, a log line
or a traceback shows `**********`, never the value. `environment()` hands them to code that
looks secrets up by their variable's name (the CRM logins, whose messages name the variables).
A variable that is set but empty counts as not set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Secrets(BaseSettings):
    """Every secret by its variable's name, lower case (SLACK_BOT_TOKEN is `slack_bot_token`)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    salesforce_username: SecretStr | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_consumer_key: SecretStr | None = None
    salesforce_consumer_secret: SecretStr | None = None
    salesforce_private_key_file: SecretStr | None = None
    salesforce_access_token: SecretStr | None = None
    hubspot_access_token: SecretStr | None = None
    hubspot_client_id: SecretStr | None = None
    hubspot_client_secret: SecretStr | None = None
    hubspot_refresh_token: SecretStr | None = None

    def value(self, name: str) -> str | None:
        """The secret of the variable `name` (e.g. SLACK_BOT_TOKEN), or None when unset or
        empty; the one place a secret is revealed."""
        field = name.lower()
        found = getattr(self, field) if field in type(self).model_fields else None
        text = found.get_secret_value() if isinstance(found, SecretStr) else ""
        return text or None

    def environment(self) -> SecretEnvironment:
        return SecretEnvironment(self)


class SecretEnvironment(Mapping[str, str]):
    """The secrets that are set, by their variable's name, revealed only when looked up; its
    repr names the variables and hides the values."""

    def __init__(self, secrets: Secrets) -> None:
        self._secrets = secrets
        names = (name.upper() for name in type(secrets).model_fields)
        self._names = tuple(name for name in names if secrets.value(name) is not None)

    def __getitem__(self, name: str) -> str:
        value = self._secrets.value(name) if name in self._names else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"SecretEnvironment({', '.join(self._names)})"

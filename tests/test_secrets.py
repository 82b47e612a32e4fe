"""Secrets come from the environment through settings.secrets and never show in a repr."""

from __future__ import annotations

import logging

import pytest

from settings.secrets import Secrets

TOKEN = "xoxb-1234-very-secret"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Secrets.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SALESFORCE_USERNAME", "ana@example.com")
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "")  # empty counts as unset
    monkeypatch.setenv("PATH_OF_SOMETHING_ELSE", "not a secret")


@pytest.mark.usefixtures("environment")
def test_values_by_variable_name() -> None:
    secrets = Secrets()
    assert secrets.value("SLACK_BOT_TOKEN") == TOKEN
    assert secrets.value("SLACK_APP_TOKEN") is None
    assert secrets.value("PATH_OF_SOMETHING_ELSE") is None  # only the secrets are read
    assert secrets.environment()["SALESFORCE_USERNAME"] == "ana@example.com"


@pytest.mark.usefixtures("environment")
def test_environment_lists_only_the_secrets_set() -> None:
    environment = Secrets().environment()
    assert sorted(environment) == ["SALESFORCE_USERNAME", "SLACK_BOT_TOKEN"]
    assert environment.get("SALESFORCE_PASSWORD") is None
    with pytest.raises(KeyError):
        environment["HUBSPOT_ACCESS_TOKEN"]


@pytest.mark.usefixtures("environment")
def test_no_secret_in_a_repr_or_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    secrets = Secrets()
    logging.getLogger("test").warning("settings: %r %s %r", secrets, secrets, secrets.environment())
    shown = caplog.text + repr(secrets.model_dump()) + str(secrets.environment())
    assert "SLACK_BOT_TOKEN" in repr(secrets.environment())
    assert TOKEN not in shown
    assert "ana@example.com" not in shown

"""What every `partner-kpi` command shares: the click context object (app.yaml and the store,
opened on first use), the one-sentence user error, and the exit statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from connectors.demo_data import DEMO_CURRENCY_RATES, DEMO_PIPELINE
from kpi.store import Store, open_store
from settings.app import LoadedConfig, load_config
from settings.kpi import TierConfig

USAGE_ERROR = 2
UNEXPECTED_ERROR = 1  # a bug: the sentence says where the traceback was written
SYNC_STOPPED = 3  # a sync stopped early: partial data, for cron and monitoring to notice
DEMO_TIERS = (("Registered", 0.0), ("Silver", 60.0), ("Gold", 80.0))


class UserError(click.ClickException):
    """An error the user can fix: shown as one sentence, exit status 2."""

    exit_code = USAGE_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"partner-kpi: {self.format_message()}", err=True)


@dataclass
class Context:
    config_option: str | None
    _config: LoadedConfig | None = None
    _store: Store | None = field(default=None, repr=False)

    @property
    def config(self) -> LoadedConfig:
        if self._config is None:
            self._config = _demo_defaults(load_config(self.config_option))
        return self._config

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config.database_url, **self.store_options())
        return self._store

    def store_options(self) -> dict[str, Any]:
        """The lock wait of app.yaml, and a session name that says which command holds it."""
        current = click.get_current_context(silent=True)
        command = f"partner-kpi {current.info_name}" if current else "partner-kpi"
        return {
            "lock_timeout": self.config.app.database_lock_timeout_seconds,
            "name": command,
        }


def _demo_defaults(config: LoadedConfig) -> LoadedConfig:
    """With no app.yaml, the defaults are set for the demo data: its currencies and pipeline."""
    if config.path is not None:
        return config
    tiers = [TierConfig(name=name, min_score=score) for name, score in DEMO_TIERS]
    kpi = config.app.kpi.model_copy(update={"tiers": tiers})
    app = config.app.model_copy(
        update={
            "currency_rates": dict(DEMO_CURRENCY_RATES),
            "stages": list(DEMO_PIPELINE),
            "kpi": kpi,
        }
    )
    return config._replace(app=app)

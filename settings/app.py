"""app.yaml: the deployment's configuration, as a typed model whose errors name the field's path.

Secrets never live here; they come from the environment (see `settings.secrets`). Relative
paths (the files source's folder, a SQLite database file) are relative to app.yaml's folder.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy.engine import make_url

from settings.alerts import Alerts
from settings.base import ConfigError, Section, TimezoneName, describe_errors
from settings.crm import FilesSourceConfig, HubSpotConfig, SalesforceConfig, SyncConfig
from settings.database import DEFAULT_DATABASE_FILE, DatabaseUrl
from settings.digests import Digests
from settings.kpi import (
    ChannelMap,
    CurrencyCode,
    CurrencyRates,
    KpiConfig,
    KpiSettings,
)
from settings.slack import AccessConfig, SchedulerConfig, SlackConfig, Surveys
from settings.vocab import Channel

CONFIG_ENV = "PARTNER_KPI_CONFIG"
DEFAULT_CONFIG_NAME = "app.yaml"


class AppConfig(Section):
    """The whole of app.yaml: each layer's sections, in the order the file usually has them."""

    source: Literal["files", "salesforce", "hubspot"] = "files"
    files: FilesSourceConfig = Field(default_factory=FilesSourceConfig)
    salesforce: SalesforceConfig = Field(default_factory=SalesforceConfig)
    hubspot: HubSpotConfig = Field(default_factory=HubSpotConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    # With a CRM source: a folder of CSV files for the records the CRM does not hold
    # (connectors.secondary.SECONDARY_FILES: trainings, survey answers, ...), in files.encoding.
    secondary_files: Path | None = None
    database_url: DatabaseUrl = f"sqlite:///{DEFAULT_DATABASE_FILE}"
    # How long a writer waits for another one that holds the store before giving up.
    database_lock_timeout_seconds: float = Field(default=30.0, gt=0)
    timezone: TimezoneName = "UTC"
    currency: CurrencyCode = "USD"
    currency_rates: CurrencyRates = Field(default_factory=dict)
    channel_map: ChannelMap = Field(default_factory=dict)
    stages: list[str] | None = None
    kpi: KpiConfig = Field(default_factory=KpiConfig)
    # Sections of the Slack app, digests, surveys and access control; each is validated
    # in full by the part of the bot that reads it.
    slack: SlackConfig = Field(default_factory=SlackConfig)
    digests: Digests = Field(default_factory=list)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    surveys: Surveys = Field(default_factory=list)
    access: AccessConfig = Field(default_factory=AccessConfig)
    alerts: Alerts = Field(default_factory=list)

    @field_validator("secondary_files")
    @classmethod
    def _beside_a_crm(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("source", "files") == "files":
            raise ValueError(
                "only with source: salesforce or hubspot; the files source reads files.path"
            )
        return value

    @property
    def kpi_settings(self) -> KpiSettings:
        """The part of app.yaml the KPI core reads (already validated here)."""
        return KpiSettings(
            source=self.source,
            timezone=self.timezone,
            currency=self.currency,
            currency_rates=self.currency_rates,
            channel_map=self.channel_map,
            stages=self.stages,
            kpi=self.kpi,
        )

    @property
    def tz(self) -> ZoneInfo:
        return self.kpi_settings.tz

    @property
    def lead_source_channels(self) -> dict[str, Channel]:
        """The default lead-source map with app.yaml's entries laid over it."""
        return self.kpi_settings.lead_source_channels

    @property
    def weights(self) -> dict[str, float]:
        return self.kpi_settings.weights


class LoadedConfig(typing.NamedTuple):
    """A validated app.yaml with its relative paths resolved."""

    app: AppConfig
    path: Path | None  # None when no file exists and the defaults are in force
    files_path: Path
    database_url: str
    secondary_files: Path | None = None  # resolved secondary_files


def config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Where the configuration is: --config, else $PARTNER_KPI_CONFIG, else ./app.yaml.

    Returns the path and whether it was asked for (an asked-for file must exist).
    """
    if explicit:
        return Path(explicit), True
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), True
    return Path(DEFAULT_CONFIG_NAME), False


def load_config(explicit: str | os.PathLike[str] | None = None) -> LoadedConfig:
    path, asked_for = config_path(explicit)
    if not path.exists():
        if asked_for:
            raise ConfigError(
                f"{path}: no such file; pass --config with the path of your app.yaml."
            )
        return resolve(AppConfig(), None, Path.cwd())
    if path.is_dir():
        raise ConfigError(
            f"{path} is a folder; pass --config (or {CONFIG_ENV}) the path of the app.yaml "
            f"file, such as {path / DEFAULT_CONFIG_NAME}."
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path.name} line {line} is not UTF-8 text (byte 0x{data[error.start]:02X} at "
            f"offset {error.start}); save app.yaml as UTF-8."
        ) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> LoadedConfig:
    name = path.name
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"{name}{where}: {problem}.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of settings at the top level.")
    try:
        app = AppConfig.model_validate(data)
    except ValidationError as error:
        lines = describe_errors(error, AppConfig)
        raise ConfigError("\n".join(f"{name}: {line}" for line in lines)) from None
    return resolve(app, path, path.resolve().parent)


def resolve(app: AppConfig, path: Path | None, base_dir: Path) -> LoadedConfig:
    files_path = app.files.path if app.files.path.is_absolute() else base_dir / app.files.path
    secondary = app.secondary_files
    if secondary is not None and not secondary.is_absolute():
        secondary = base_dir / secondary
    url = make_url(app.database_url)
    database = url.database
    on_disk = url.get_backend_name() == "sqlite" and database and database != ":memory:"
    on_disk = on_disk and not str(database).startswith("file:")  # a URI names its own path
    if on_disk and not Path(str(database)).is_absolute():
        url = url.set(database=str(base_dir / str(database)))
    database_url = url.render_as_string(hide_password=False)
    return LoadedConfig(app, path, files_path, database_url, secondary)

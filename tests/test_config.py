"""app.yaml: defaults, path resolution, and one error line per problem naming the field's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpi.models import Channel
from settings.app import load_config, parse_config
from settings.base import ConfigError
from settings.kpi import DEFAULT_WEIGHTS

REPO = Path(__file__).resolve().parent.parent


def parse(text: str, where: Path = Path("/srv/kpi/app.yaml")):  # type: ignore[no-untyped-def]
    return parse_config(text, where)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kpi: {weights: {close_rat: 0.2}}",
            "app.yaml: kpi.weights.close_rat: unknown KPI; expected one of won_revenue, "
            "close_rate, avg_deal_size, sales_velocity, partner_nps, courses_completed",
        ),
        ("kpi: {weights: {close_rate: -1}}", "app.yaml: kpi.weights.close_rate: "),
        ("source: sap", "app.yaml: source: "),
        ("timezone: Mars/Olympus", "app.yaml: timezone: unknown timezone 'Mars/Olympus'"),
        ("currency: dollars", "app.yaml: currency: 'dollars' is not a three-letter currency"),
        ("currency_rates: {EUR: 0}", "app.yaml: currency_rates: the rate of EUR must be"),
        ("channel_map: {Web: paidd}", "app.yaml: channel_map.Web: "),
        ("fils: {path: x}", "app.yaml: fils: unknown field; expected one of source, files,"),
        ("files: {paht: x}", "app.yaml: files.paht: unknown field; expected one of path"),
        (
            "digests: [{name: w, channel: C1, schedule: '0 9 * * *'}, 3]",
            "app.yaml: digests[1]: ",
        ),
        ("database_url: 'not a url'", "app.yaml: database_url: not a database URL"),
        (
            "hubspot: {stage_history: dates}",
            "app.yaml: hubspot.stage_history: Input should be 'properties_with_history' or "
            "'date_entered', not 'dates'",
        ),
        ("- a\n- b", "app.yaml: expected a mapping of settings at the top level."),
        (
            "files: {encoding: excel}",
            "app.yaml: files.encoding: unknown encoding 'excel'; use a Python codec name",
        ),
        ("sync: {max_delete_share: 1.5}", "app.yaml: sync.max_delete_share: "),
        ("database_lock_timeout_seconds: 0", "app.yaml: database_lock_timeout_seconds: "),
        ("salesforce: {read_timeout_seconds: 0}", "app.yaml: salesforce.read_timeout_seconds: "),
        (
            "database_url: 'mssql+pyodbc://kpi@db/kpi'",
            "app.yaml: database_url: partner-kpi does not run on mssql databases; use sqlite",
        ),
        ("source: files\n  bad: [", "app.yaml line 2: "),
    ],
)
def test_each_error_names_the_field_path(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith(expected), message
    assert "Traceback" not in message and "\n" not in message


def test_several_problems_give_one_line_each() -> None:
    lines = error_of("source: sap\ntimezone: Nowhere/Land").splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["source", "timezone"]


def test_literal_error_shows_the_wrong_value_and_the_choices() -> None:
    message = error_of("source: sap")
    assert "'files', 'salesforce' or 'hubspot'" in message and "'sap'" in message


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARTNER_KPI_CONFIG", raising=False)
    config = load_config(None)
    assert config.path is None
    assert config.app.source == "files"
    assert config.files_path == tmp_path / "demo-data"
    assert config.database_url == f"sqlite:///{tmp_path / 'partner_kpi.db'}"
    assert config.app.weights == DEFAULT_WEIGHTS


def test_an_asked_for_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_KPI_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file"):
        load_config(None)


def test_config_option_wins_over_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text("currency: EUR\n")
    monkeypatch.setenv("PARTNER_KPI_CONFIG", str(tmp_path / "other.yaml"))
    assert load_config(chosen).app.currency == "EUR"


def test_relative_paths_resolve_against_the_files_folder() -> None:
    config = parse("files: {path: data/csv}\ndatabase_url: sqlite:///var/kpi.db\n")
    assert config.files_path == Path("/srv/kpi/data/csv")
    assert config.database_url == "sqlite:////srv/kpi/var/kpi.db"


def test_absolute_and_server_urls_are_kept() -> None:
    config = parse("database_url: postgresql+psycopg://kpi:s3cret@db/kpi\nfiles: {path: /data}")
    assert config.database_url == "postgresql+psycopg://kpi:s3cret@db/kpi"
    assert config.files_path == Path("/data")


def test_given_weights_replace_the_defaults_as_a_whole() -> None:
    weights = parse("kpi: {weights: {won_revenue: 0.3, close_rate: 0.2}}").app.weights
    assert weights["won_revenue"] == 0.3 and weights["close_rate"] == 0.2
    assert weights["avg_deal_size"] == 0.0 and weights["partner_nps"] == 0.0


def test_channel_map_is_laid_over_defaults_ignoring_case_and_spaces() -> None:
    channels = parse('channel_map: {"  Paid   Search ": owned, Podcast: paid}').app
    mapped = channels.lead_source_channels
    assert mapped["paid search"] is Channel.OWNED  # overrides the default
    assert mapped["podcast"] is Channel.PAID
    assert mapped["partner referral"] is Channel.EARNED  # a default kept


def test_currency_codes_are_normalized() -> None:
    app = parse("currency: usd\ncurrency_rates: {eur: 1.08}").app
    assert app.currency == "USD" and app.currency_rates == {"EUR": 1.08}


def test_the_repository_app_yaml_is_valid() -> None:
    config = load_config(REPO / "app.yaml")
    assert config.app.source == "files"
    assert config.files_path == REPO / "demo-data"

"""The command line end to end: demo, sync, partners, kpi, program, top, db upgrade, errors."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bot.cli import main
from bot.console import PROMPT
from bot.terminal import LineProgress
from settings.app import parse_config
from tests.csv_folder import minimal_folder
from tests.demo_run import DEMO_AS_OF, DemoRun

AS_OF = DEMO_AS_OF


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Runs the command line in-process; returns (exit status, stdout, stderr)."""
    try:
        main(list(args))
        status = 0
    except SystemExit as done:
        status = int(done.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def command() -> list[str]:
    """The installed console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "partner-kpi"
    assert script.exists(), "install the package first: pip install -e '.[dev]'"
    return [str(script)]


@pytest.fixture(scope="module")
def demo_dir(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the folder where `partner-kpi demo` ran as a newcomer would run it."""
    assert "Demo data for a program of 60 partners" in demo_run.stdout
    assert "deals" in demo_run.stdout
    return demo_run.copy_to(tmp_path_factory.mktemp("demo") / "run")


@pytest.fixture
def in_demo(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(demo_dir)
    monkeypatch.delenv("PARTNER_KPI_CONFIG", raising=False)
    return demo_dir


def test_demo_creates_data_and_store(demo_dir: Path) -> None:
    assert (demo_dir / "demo-data" / "deals.csv").exists()
    assert (demo_dir / "partner_kpi.db").exists()


def test_partners_lists_and_searches(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "partners")
    assert status == 0 and "60 partner(s)" in out
    status, out, _ = run(capsys, "partners", "northwind")
    assert "Northwind Traders" in out and "Northwind Digital" in out and "2 partner(s)" in out


def test_kpi_json_follows_the_contract(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "kpi", "acme", "--period", "last-90d", "--as-of", AS_OF, "--json")
    assert status == 0
    card = json.loads(out)
    assert card["partner"]["name"] == "Acme Corp"
    assert card["period"] == {"name": "last-90d", "start": "2026-08-25", "end": "2026-11-23"}
    assert card["previous_period"] == {"start": "2026-05-27", "end": "2026-08-25"}
    assert set(card) == {
        "partner",
        "period",
        "previous_period",
        "kpis",
        "previous",
        "channels",
        "stages",
        "quality_score",
        "rank",
        "ranked_partners",
        "training",
        "data_as_of",
        "goals",
    }
    assert set(card["kpis"]) == set(card["previous"])
    for key in ("customers_active", "account_retention", "mrr_retention", "referrals"):
        assert key in card["kpis"]  # section 7
    training = card["training"]  # section 8: null, or the latest course with before and after
    assert training is None or set(training) == {
        "course",
        "completed_on",
        "before",
        "after",
        "after_days",
    }
    assert "survey_responses" in card["kpis"] and "channels" not in card["kpis"]
    assert set(card["channels"]) == {"paid", "earned", "owned", "other"}
    assert [s["stage"] for s in card["stages"]][:2] == ["Prospecting", "Qualification"]
    assert 1 <= card["rank"] <= card["ranked_partners"] <= 60


def test_kpi_by_id_equals_kpi_by_name(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, by_name, _ = run(capsys, "kpi", "Acme Corp", "--as-of", AS_OF, "--json")
    partner_id = json.loads(by_name)["partner"]["id"]
    _, by_id, _ = run(capsys, "kpi", partner_id, "--as-of", AS_OF, "--json")
    assert json.loads(by_id)["kpis"] == json.loads(by_name)["kpis"]


def test_ambiguous_and_unknown_names(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "kpi", "northwind", "--json")
    assert status == 2 and out == ""
    assert "Northwind Digital" in err and "Northwind Traders" in err
    status, out, _ = run(capsys, "kpi", "Acme Crop", "--json")  # a typo still finds it
    assert status == 0 and json.loads(out)["partner"]["name"] == "Acme Corp"
    status, _, err = run(capsys, "kpi", "Zzyzx Qwerty")
    assert status == 2 and "No partner matches" in err


def test_bad_period_lists_the_forms(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "kpi", "acme", "--period", "fortnight")
    assert status == 2
    assert '"fortnight" is not a period' in err and "last-90d" in err
    assert "Traceback" not in err


def test_program_json(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "program", "--period", "2026-Q3", "--as-of", AS_OF, "--json")
    assert status == 0
    card = json.loads(out)
    assert card["partner"] is None and card["quality_score"] is None and card["rank"] is None
    assert card["period"] == {"name": "2026-Q3", "start": "2026-07-01", "end": "2026-10-01"}
    assert card["previous_period"] == {"start": "2026-04-01", "end": "2026-07-01"}
    for key in ("active_partners", "partner_revenue", "partner_revenue_share"):
        assert key in card["kpis"] and key in card["previous"]
    assert card["kpis"]["partner_revenue"] == card["kpis"]["won_revenue"]
    assert card["ranked_partners"] > 0
    assert "customers_active" in card["kpis"] and "customers_active" in card["previous"]
    assert set(card["training"]) == {"trained", "untrained"}
    groups = card["training"].values()
    assert sum(group["partners"] for group in groups) == card["kpis"]["active_partners"]


def test_top_is_ordered(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "top", "-n", "5", "--as-of", AS_OF)
    assert status == 0
    scores = [float(line.split()[-1]) for line in out.splitlines()[3:] if line.strip()]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)


def test_text_scorecard(in_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "kpi", "acme", "--as-of", AS_OF)
    assert status == 0
    assert out.startswith("Acme Corp · last-90d (2026-08-25 – 2026-11-22)")
    assert "Won revenue" in out and "Quality score" in out and "rank" in out
    assert "Active customers" in out and "Account retention" in out  # the demo has customers
    assert "Training: after " in out and " of 90 days observed" in out  # Acme trains
    status, out, _ = run(capsys, "program", "--as-of", AS_OF)
    assert status == 0 and "Training, trained in the last 365 days: " in out
    assert "Training, untrained: " in out


def test_demo_will_not_overwrite_other_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    minimal_folder(tmp_path / "demo-data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARTNER_KPI_CONFIG", raising=False)
    status, _, err = run(capsys, "demo")
    assert status == 2 and "will not overwrite" in err
    assert (tmp_path / "demo-data" / "partners.csv").read_text().count("\n") == 3


def test_sync_reports_bad_rows_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = minimal_folder(tmp_path / "data")
    with (folder / "deals.csv").open("a") as handle:
        handle.write("d9,p1,bad,lots,,x,won,2026-01-01,2026-01-02,,,,,,,\n")
    (tmp_path / "app.yaml").write_text("files: {path: data}\n")
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "sync")
    assert status == 0
    assert "deals.csv:5: amount 'lots' is not a number" in out
    status, out, _ = run(capsys, "sync")
    assert status == 0 and "unchanged" in out


def test_config_errors_are_one_sentence_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.yaml").write_text("kpi: {weights: {close_rat: 0.2}}\n")
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "partners")
    assert status == 2 and out == ""
    assert err.startswith("partner-kpi: app.yaml: kpi.weights.close_rat: unknown KPI;")
    assert "Traceback" not in err


def test_db_upgrade_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARTNER_KPI_CONFIG", raising=False)
    status, out, _ = run(capsys, "db", "upgrade")
    assert status == 0 and "from revision empty" in out
    status, out, _ = run(capsys, "db", "upgrade")
    assert status == 0 and "up to date" in out


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "demo" in out and "sync" in out and "kpi" in out
    status, out, _ = run(capsys, "kpi", "--help")
    assert status == 0 and "--period" in out
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.startswith("partner-kpi, version")


def test_serve_without_a_token_says_which_secret_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARTNER_KPI_CONFIG", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    status, _, err = run(capsys, "serve")
    assert status == 2
    assert err.strip() == (
        "partner-kpi: SLACK_BOT_TOKEN is not set; export it in the environment (never in app.yaml)."
    )


def test_sync_progress_shows_rows_and_their_rate_per_object() -> None:
    ticks = iter([100.0, 100.5, 102.0, 200.0, 200.2])
    progress = LineProgress(io.StringIO(), clock=lambda: next(ticks))
    assert progress.line("Opportunity", 2_000) == "Opportunity: 2,000 rows read"
    assert progress.line("Opportunity", 4_000) == "Opportunity: 4,000 rows read"  # < 1 s
    assert progress.line("Opportunity", 8_000) == "Opportunity: 8,000 rows read, 4,000/s"
    assert progress.line("Contact", 500) == "Contact: 500 rows read"  # its own start
    assert progress.line("Contact", 900) == "Contact: 900 rows read"


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _commands(sub, (*path, name))
    return found


def test_version_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import cli

    paths = _commands(cli)
    assert ("survey", "status") in paths and ("db", "upgrade") in paths and len(paths) > 12
    for path in paths:
        status, out, _ = run(capsys, *path, "--version")
        assert status == 0 and out.startswith("partner-kpi, version"), path


@pytest.fixture
def empty_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An app.yaml with nothing but its store (empty), in the working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARTNER_KPI_CONFIG", raising=False)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    (tmp_path / "app.yaml").write_text(f"database_url: sqlite:///{tmp_path / 'kpi.db'}\n")
    return tmp_path / "app.yaml"


def test_survey_status_without_campaigns_says_how_to_add_one(
    empty_deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "survey", "status")
    assert status == 0 and err == ""
    assert out.startswith("No survey campaigns yet. Add one to app.yaml")
    example = out[out.index("surveys:") : out.index("\n\nthen")]
    config = parse_config(example, empty_deployment)  # the example is a valid campaign
    assert [c.name for c in config.app.surveys] == ["quarterly-nps"]


def test_an_http_manifest_without_a_public_url_names_the_setting(
    empty_deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "manifest", "--http")
    assert status == 2 and out == ""
    assert "set slack.request_url in app.yaml" in err and "Traceback" not in err
    status, out, _ = run(capsys, "manifest", "--socket-mode")
    assert status == 0 and "socket_mode_enabled: true" in out


def test_kpi_on_an_empty_store_says_how_to_fill_it(
    empty_deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "kpi", "Acme")
    assert status == 2 and out == ""
    assert "the store is empty" in err and "partner-kpi sync" in err and "partner-kpi demo" in err
    assert "No partner" not in err


AS_OF_LINE = re.compile(r"Data as of \d{4}-\d\d-\d\d \d\d:\d\d UTC \([^)]*\)")


def test_the_readme_sample_is_the_demo_s_best_partner(in_demo: Path) -> None:
    """The scorecard at the top of the README is the console's answer for the demo's best
    partner last quarter (only the sync's time and age differ from run to run)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("```\n/partner-kpi ") + 4
    sample = readme[start : readme.index("```", start)].strip("\n")
    question, _, shown = sample.partition("\n")
    done = subprocess.run(
        [*command(), "console", "--as-of", AS_OF],
        input=f"top 1 last-quarter\n{question}\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    _, top, answer = done.stdout.split(PROMPT)
    best = re.search(r"\n1\. (.+) · ", top)
    assert best is not None and question == f"/partner-kpi {best[1]} last-quarter"
    real = answer.partition("\n")[2].strip("\n")
    assert AS_OF_LINE.sub("Data as of …", shown.strip("\n")) == AS_OF_LINE.sub("Data as of …", real)


def test_goals_lists_every_goal_in_the_specs_order(
    in_demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "goals", "--as-of", AS_OF, "--json")
    assert status == 0
    goals = json.loads(out)
    assert goals[0]["partner"] is None  # the program first
    names = [g["partner"]["name"].casefold() for g in goals if g["partner"]]
    assert names == sorted(names)
    assert set(goals[0]) == {
        "partner", "kpi", "period", "target", "direction", "elapsed", "actual", "attainment",
        "expected", "pace", "projected", "open_expected", "forecast", "coverage", "status",
    }  # fmt: skip
    status, out, _ = run(capsys, "goals", "Acme Corp", "--as-of", AS_OF)
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "partner", "kpi", "period", "target", "actual", "attained", "pace", "status", "forecast",
    ]  # fmt: skip
    assert rows and all(row.startswith("Acme Corp") for row in rows)
    status, out, _ = run(capsys, "goals", "--program", "--as-of", AS_OF, "--json")
    assert status == 0 and all(g["partner"] is None for g in json.loads(out))
    status, _, err = run(capsys, "goals", "Acme Corp", "--program")
    assert status == 2 and "not both" in err
    status, out, _ = run(capsys, "top", "--by", "attainment", "-n", "3", "--as-of", AS_OF)
    assert status == 0 and out.startswith("Top 3 by attainment of their won_revenue goal")

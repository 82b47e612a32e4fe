"""Every fault a person can cause ends as one sentence and a non-zero exit status, never a
traceback: each runs the installed `partner-kpi` in a subprocess, as a user would."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.cli import main
from tests.csv_folder import minimal_folder
from tests.fake_slack import FakeSlack
from tests.test_cli import command


def partner_kpi(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PARTNER_KPI_CONFIG"}
    environment["PARTNER_KPI_CRASH_DIR"] = str(folder / "crashes")
    return subprocess.run(
        [*command(), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**environment, **(env or {})},
    )


def one_sentence(done: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The single line on stderr, after checking the status and that nothing else was said."""
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("partner-kpi: ")
    return lines[0].removeprefix("partner-kpi: ")


def config(folder: Path, body: str) -> Path:
    path = folder / "app.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with CSV data, an app.yaml and a store synced from them (in this process:
    the tests run the installed command for what they check, not to set up)."""
    minimal_folder(tmp_path / "data")
    config(tmp_path, "files:\n  path: data\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARTNER_KPI_CONFIG", raising=False)
    main(["sync"])
    return tmp_path


def test_config_naming_a_folder(tmp_path: Path) -> None:
    (tmp_path / "settings").mkdir()
    sentence = one_sentence(partner_kpi(tmp_path, "--config", "settings", "partners"))
    assert sentence == (
        "settings is a folder; pass --config (or PARTNER_KPI_CONFIG) the path of the app.yaml "
        "file, such as settings/app.yaml."
    )


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    data = "currency: EUR\ntimezone: Europe/Zürich\n".encode("latin-1")
    (tmp_path / "app.yaml").write_bytes(data)
    sentence = one_sentence(partner_kpi(tmp_path, "partners"))
    assert data.index(b"\xfc") == 32
    assert sentence == (
        "app.yaml line 2 is not UTF-8 text (byte 0xFC at offset 32); save app.yaml as UTF-8."
    )


@pytest.mark.parametrize("url", ["mysql://kpi@db.example/kpi", "oracle+oracledb://kpi@db/kpi"])
def test_an_unsupported_database(tmp_path: Path, url: str) -> None:
    config(tmp_path, f"database_url: {url}\n")
    backend = url.split(":")[0].split("+")[0]
    assert one_sentence(partner_kpi(tmp_path, "partners")) == (
        f"app.yaml: database_url: partner-kpi does not run on {backend} databases; use sqlite "
        "(sqlite:///partner_kpi.db) or postgresql (postgresql+psycopg://user@host/dbname)"
    )


def test_a_file_that_is_not_a_sqlite_database(tmp_path: Path) -> None:
    (tmp_path / "store.db").write_text("id,name\np1,Acme\n")
    config(tmp_path, "database_url: sqlite:///store.db\n")
    sentence = one_sentence(partner_kpi(tmp_path, "partners"))
    assert sentence == (
        f"{tmp_path / 'store.db'} is not a SQLite database (file is not a database); point "
        "database_url in app.yaml at the store's file, or at a new file to start an empty store."
    )
    assert (tmp_path / "store.db").read_text() == "id,name\np1,Acme\n"


def test_a_read_only_store(synced: Path) -> None:
    store = synced / "partner_kpi.db"
    config(
        synced, f'files:\n  path: data\ndatabase_url: "sqlite:///file:{store}?mode=ro&uri=true"\n'
    )
    assert partner_kpi(synced, "partners").returncode == 0  # reading is fine
    sentence = one_sentence(partner_kpi(synced, "sync"))
    assert sentence == (
        f"the database {store} is read-only (attempt to write a readonly database); let the "
        "user running partner-kpi write the file and its folder, or point database_url at a "
        "writable store."
    )


def test_a_store_locked_by_another_writer_waits_then_says_so(synced: Path) -> None:
    config(synced, "files:\n  path: data\ndatabase_lock_timeout_seconds: 1\n")
    holder = sqlite3.connect(synced / "partner_kpi.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer, mid-transaction
    try:
        started = time.monotonic()
        done = partner_kpi(synced, "sync")
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert one_sentence(done) == (
        f"the database {synced / 'partner_kpi.db'} stayed locked by another writer for 1 s "
        "(held by another process); try again when it is done, or raise "
        "database_lock_timeout_seconds in app.yaml."
    )
    assert 1 <= waited < 30
    assert partner_kpi(synced, "sync").returncode == 0  # and works once the lock is gone


def test_a_postgres_store_locked_by_another_writer_names_the_holder(
    tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite cannot tell who holds its lock (the test above)")
    postgres_schema = database_url
    minimal_folder(tmp_path / "data")
    config(
        tmp_path,
        f"files:\n  path: data\ndatabase_url: '{postgres_schema}'\n"
        "database_lock_timeout_seconds: 1\n",
    )
    assert partner_kpi(tmp_path, "sync").returncode == 0
    holder = create_engine(postgres_schema, connect_args={"application_name": "nightly-import"})
    with holder.connect() as connection:
        connection.execute(text("LOCK TABLE sync_runs IN EXCLUSIVE MODE"))
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        done = partner_kpi(tmp_path, "sync")
        connection.rollback()
    holder.dispose()
    sentence = one_sentence(done)
    assert sentence.startswith(
        "the database postgresql+psycopg://postgres@127.0.0.1:5432/test?options="
    )
    assert f"stayed locked by another writer for 1 s (held by nightly-import (pid {pid}" in sentence
    assert sentence.endswith("raise database_lock_timeout_seconds in app.yaml.")


def test_weights_that_sum_to_zero(tmp_path: Path) -> None:
    config(tmp_path, "kpi:\n  weights:\n    close_rate: 0\n    won_revenue: 0\n")
    assert one_sentence(partner_kpi(tmp_path, "program")) == (
        "app.yaml: kpi.weights: the weights sum to 0, so no quality score can be computed; "
        "give at least one KPI a weight above 0"
    )


def test_an_unexpected_error_is_one_sentence_and_a_traceback_file(synced: Path) -> None:
    """A bug (injected here) still ends as one sentence that names the traceback's file."""
    crash = (
        "import sys; import kpi.engine; from bot.cli import main\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('the engine broke')\n"
        "kpi.engine.KpiEngine.program = broken\n"
        "main(['program'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", crash],
        cwd=synced,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PARTNER_KPI_CRASH_DIR": str(synced / "crashes")},
    )
    sentence = one_sentence(done, status=1)
    written = list((synced / "crashes").iterdir())
    assert len(written) == 1
    assert sentence == (
        f"unexpected error (RuntimeError: the engine broke); the full traceback is in "
        f"{written[0]}; please report it."
    )
    traceback = written[0].read_text()
    assert traceback.startswith("Traceback") and "in broken" in traceback


def test_a_csv_in_another_encoding_is_one_sentence_until_files_encoding_names_it(
    synced: Path,
) -> None:
    partners = synced / "data" / "partners.csv"
    partners.write_bytes(partners.read_text().replace("Acme Corp", "Acmé Corp").encode("cp1252"))
    offset = partners.read_bytes().index(b"\xe9")
    sentence = one_sentence(partner_kpi(synced, "sync"))
    assert sentence == (
        f"partners.csv line 2 is not utf-8 text (byte 0xE9 at offset {offset}); set "
        "files.encoding in app.yaml to the file's encoding (cp1252 for most Excel exports) or "
        "export it as UTF-8 CSV."
    )
    config(synced, "files:\n  path: data\n  encoding: cp1252\n")
    assert partner_kpi(synced, "sync").returncode == 0
    assert "Acmé Corp" in partner_kpi(synced, "partners").stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_env(api_url: str, token: str = "xoxb-test") -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": token,
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "SLACK_API_URL": api_url,
        "SLACK_APP_TOKEN": "",
    }


def last_sentence(done: subprocess.CompletedProcess[str]) -> str:
    """serve logs as it goes; its last line on stderr is the sentence it stopped with."""
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("partner-kpi: ")
    return last.removeprefix("partner-kpi: ")


def test_serve_with_a_bot_token_slack_refuses_stops_at_once(synced: Path) -> None:
    with FakeSlack() as fake:
        started = time.monotonic()
        done = partner_kpi(
            synced, "serve", "--port", str(free_port()), env=serve_env(fake.api_url, "xoxb-no")
        )
    assert time.monotonic() - started < 60
    sentence = last_sentence(done)
    assert sentence.startswith("Slack refused SLACK_BOT_TOKEN (invalid_auth)")
    assert "xoxb-no" not in done.stderr


@pytest.mark.slow
def test_serve_stops_when_slack_stays_unreachable_past_the_start_bound(synced: Path) -> None:
    with (synced / "app.yaml").open("a") as app_yaml:
        app_yaml.write("slack:\n  startup_timeout_seconds: 2\n")
    closed = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there
    started = time.monotonic()
    done = partner_kpi(synced, "serve", "--port", str(free_port()), env=serve_env(closed))
    assert time.monotonic() - started < 60
    sentence = last_sentence(done)
    assert sentence.startswith("Slack could not be reached for 2 s since the start (auth.test")
    assert "SLACK_API_URL" in sentence


def test_serve_on_a_port_in_use_is_one_sentence(synced: Path) -> None:
    with FakeSlack() as fake, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = partner_kpi(
            synced, "serve", "--host", "127.0.0.1", "--port", str(port),
            env=serve_env(fake.api_url),
        )  # fmt: skip
    sentence = last_sentence(done)
    assert sentence == (
        f"port {port} on 127.0.0.1 is already in use by another program; stop it, or choose "
        "another port with --port or slack.port in app.yaml."
    )

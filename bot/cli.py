"""The `partner-kpi` command line.

Every error a person can cause (a bad app.yaml, an unreachable database, an unreadable source)
ends as one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.exc import DBAPIError

from bot.answers import Answers
from bot.channel_audience import check_post_channels
from bot.cli_alerts import alerts
from bot.cli_common import (
    SYNC_STOPPED,
    UNEXPECTED_ERROR,
    USAGE_ERROR,
    Context,
    UserError,
)
from bot.cli_digest import digest, jobs
from bot.cli_survey import survey
from bot.console import Console, run_console
from bot.crash import last_resort
from bot.formatting import KPI_LABELS, format_value
from bot.goal_text import goal_lines, goal_table, percent, status_word
from bot.http_server import IDLE_TIMEOUT
from bot.manifest import NoRequestUrl, manifest_yaml
from bot.server import serve as serve_forever
from bot.slack_app import MissingSecret, TokenRefused, build_app
from bot.socket_health import SocketHealth
from bot.socket_mode import APP_TOKEN_ENV, AppTokenError, SocketModeRunner
from bot.terminal import LineProgress, scorecard, scorecard_notes, sync_report, table
from connectors.demo_data import DEMO_MARKER, write_demo_data
from connectors.errors import SourceError
from connectors.guard import DeletionRefused
from connectors.sync import run_sync, source_for
from kpi.engine import KpiEngine, Scorecard
from kpi.goals import PROGRAM
from kpi.leaders import (
    ATTAINMENT,
    RANKABLE,
    attainment_leaderboard,
    leaderboard,
    value_of,
)
from kpi.lookup import Found, describe, find_partner
from kpi.migrate import upgrade
from kpi.models import Partner
from kpi.store import StoreError, open_store
from kpi.store_faults import first_line
from settings.base import ConfigError
from settings.periods import DEFAULT_PERIOD, Period, PeriodError, parse_period, today_in
from settings.secrets import Secrets
from settings.vocab import PARTNER_KPI_KEYS
from templates import word

if TYPE_CHECKING:
    from bot.jobs import Jobs

log = logging.getLogger("partner_kpi")


def _package_version() -> str:
    try:
        return version("partner-kpi")
    except PackageNotFoundError:
        return "0+unknown"


period_option = click.option(
    "--period",
    "-p",
    default=DEFAULT_PERIOD,
    show_default=True,
    help="last-90d, this-quarter, last-month, 2026-Q3, 2026-09, 2026, 2026-01-01..2026-03-31, ...",
)
as_of_option = click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The day periods are counted from (default: today in app.yaml's timezone).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the JSON contract.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="app.yaml to use (default: $PARTNER_KPI_CONFIG, else ./app.yaml).",
)
@click.version_option(_package_version(), prog_name="partner-kpi")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """partner-kpi: channel-partner KPIs from your CRM, in Slack."""
    if isinstance(ctx.obj, Context):  # main's, so a fault can be told with its store
        ctx.obj.config_option = config_path
    else:
        ctx.obj = Context(config_path)


@cli.command()
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date the demo data ends on (default: today).",
)
@click.pass_obj
def demo(obj: Context, as_of: Any) -> None:
    """Load the demo partner program into the local store and show what partner-kpi does."""
    config = obj.config
    if config.app.source != "files":
        raise UserError(word("cli.demo_needs_files", source=config.app.source))
    folder = config.files_path
    if folder.exists() and any(folder.iterdir()) and not (folder / DEMO_MARKER).exists():
        raise UserError(word("cli.demo_folder_taken", folder=folder))
    day = as_of.date() if as_of else today_in(config.app.tz)
    summary = write_demo_data(folder, day)
    click.echo(
        word("cli.demo_written", partners=summary.partners, deals=summary.deals, folder=folder)
    )
    # The demo's own data replaces the last demo's (its dates move with --as-of): not a loss.
    report = _sync(obj, full=True, accept_deletes=True)
    click.echo(sync_report(report))
    _showcase(obj, day)
    click.echo(word("cli.demo_store", url=config.database_url))
    if sys.stdin.isatty():
        click.echo(word("cli.demo_try_console"))
        _console(obj, day)
    else:
        click.echo(word("cli.demo_next"))


def _console(obj: Context, day: date | None = None) -> None:
    app = obj.config.app
    today = (lambda: day) if day else (lambda: today_in(app.tz))
    console = Console(
        answers=Answers(obj.store, app, today),
        command=app.slack.command,
        out=sys.stdout,
        color=sys.stdout.isatty(),
    )
    run_console(console, read=input if sys.stdin.isatty() else _read_piped)


def _read_piped(prompt: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    sys.stdout.write(prompt + line)
    return line


@cli.command()
@as_of_option
@click.pass_obj
def console(obj: Context, as_of: Any) -> None:
    """Chat with the bot in the terminal: the Slack app's messages, no workspace needed."""
    _console(obj, as_of.date() if as_of else None)


@cli.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", type=int, help="Port (default: slack.port in app.yaml, 3000).")
@click.option(
    "--idle-timeout",
    type=click.IntRange(min=1),
    default=IDLE_TIMEOUT,
    show_default=True,
    help="Seconds before a connection that sends and receives nothing is closed.",
)
@click.pass_obj
def serve(obj: Context, host: str, port: int | None, idle_timeout: int) -> None:
    """Run the Slack app: HTTP mode, or Socket Mode when SLACK_APP_TOKEN is set."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    slack = obj.config.app.slack
    app_token = (Secrets().value(APP_TOKEN_ENV) or "").strip() or None
    try:
        # Socket Mode never receives a signed request: no signing secret needed there.
        app, services = build_app(
            obj.store,
            obj.config,
            signing_secret="" if app_token else None,
            give_up=_stop_serving,
        )
        socket = None
        if app_token:
            socket = SocketModeRunner(app, app_token, SocketHealth(slack.socket_down_seconds))
            socket.start()
    except (MissingSecret, TokenRefused, AppTokenError) as error:
        raise UserError(str(error)) from None
    if services.facts.workspace is not None:
        for problem in check_post_channels(services.facts, obj.config.app):
            log.error("%s", problem)
    # One scheduler per replica: digests, the sync and survey rounds, exactly once via the send log.
    from bot.serve_jobs import start_jobs

    started: list[Jobs] = []

    def start_scheduler() -> None:
        started.append(start_jobs(obj.store, obj.config, services.client))

    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        # `docker stop`, Kubernetes: SIGTERM ends serve cleanly (exit 0), schedulers stopped.
        # While HTTP mode serves, SIGTERM drains the requests under way first (bot/server.py).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    unfinished = False
    listen_port = port or slack.port
    try:
        unfinished = serve_forever(
            app,
            obj.store,
            host,
            listen_port,
            slack.path,
            socket,
            idle_timeout,
            services.facts.workspace_problem,
            listening=start_scheduler,
        )
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        raise UserError(word("cli.port_in_use", port=listen_port, host=host)) from None
    finally:
        for scheduler in started:
            scheduler.shutdown()
        if unfinished or (socket is not None and socket.unfinished):
            # Python would wait for the stuck listeners' threads at exit: the stop is bounded.
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)


def _stop_serving(sentence: str) -> None:
    """Ends serve from the auth.test thread: one sentence, exit status 2 (nothing is in
    flight: every request was refused while the workspace was unknown)."""
    click.echo(f"partner-kpi: {sentence}", err=True)
    logging.shutdown()
    os._exit(USAGE_ERROR)


@cli.command()
@click.option(
    "--socket-mode/--http", default=None, help="Default: Socket Mode when SLACK_APP_TOKEN is set."
)
@click.pass_obj
def manifest(obj: Context, socket_mode: bool | None) -> None:
    """Print a Slack app manifest (YAML) for this deployment."""
    try:
        click.echo(manifest_yaml(obj.config.app, socket_mode), nl=False)
    except NoRequestUrl as error:
        raise UserError(str(error)) from None


def _showcase(obj: Context, day: date) -> None:
    """What a manager would ask first: the leaders, then one partner's scorecard."""
    period = parse_period(DEFAULT_PERIOD, day)
    engine = KpiEngine(obj.store, obj.config.app.kpi_settings)
    currency = obj.config.app.currency
    cards = engine.all_partners(period)
    leaders = leaderboard(list(cards.values()), "quality_score")[:5]
    rows = [
        (i, card["partner"]["name"], format_value("quality_score", card["quality_score"]))
        for i, card in enumerate(leaders, 1)
    ]
    click.echo(word("cli.showcase_top", period=period.name))
    click.echo(table(("#", "partner", "Quality score"), rows, numeric={0, 2}))
    if leaders:
        first = leaders[0]["partner"]
        details = engine.scorecard(first["id"], period, as_of=day)
        click.echo(word("cli.showcase_kpi", name=first["name"]))
        _print_scorecard(details, currency)


@cli.command()
@click.option("--full", is_flag=True, help="Re-read everything instead of what changed.")
@click.option(
    "--accept-deletes",
    is_flag=True,
    help="Let this sync delete more than sync.max_delete_share of a table (or all of it).",
)
@click.pass_obj
def sync(obj: Context, full: bool, accept_deletes: bool) -> None:
    """Bring the configured source's partner data into the store.

    Exit status: 0 done; 2 a fault to fix or deletions refused (one sentence says which);
    3 stopped early at an API allowance (partial data, resumed by the next sync).
    """
    report = _sync(obj, full, accept_deletes)
    click.echo(sync_report(report))
    if report.stopped_early:
        sys.exit(SYNC_STOPPED)


def _sync(obj: Context, full: bool, accept_deletes: bool = False) -> Any:
    source = source_for(obj.config)
    progress = LineProgress()
    try:
        return run_sync(
            obj.store, source, full=full, progress=progress, accept_deletes=accept_deletes
        )
    finally:
        progress.done()


@cli.command()
@click.argument("search", required=False)
@click.pass_obj
def partners(obj: Context, search: str | None) -> None:
    """List the partners, or those whose name or id contains SEARCH."""
    store = obj.store
    found = store.partners()
    if search:
        needle = search.casefold().strip()
        found = [p for p in found if needle in p.name.casefold() or needle == p.id.casefold()]
    if not found:
        click.echo(
            word("cli.no_partners_match", search=search) if search else word("cli.no_partners_hint")
        )
        return
    deals = store.deal_counts_by_partner()
    rows = [
        (p.name, p.id, p.tier or "", p.joined_on, p.left_on or "", deals.get(p.id, 0))
        for p in found
    ]
    click.echo(table(("partner", "id", "tier", "joined", "left", "deals"), rows, numeric={5}))
    click.echo(word("cli.partner_count", count=len(found)))


def _as_of(obj: Context, as_of: Any) -> date:
    return as_of.date() if as_of else today_in(obj.config.app.tz)


def _period(obj: Context, text: str, as_of: Any) -> Period:
    day = as_of.date() if as_of else today_in(obj.config.app.tz)
    try:
        return parse_period(text, day)
    except PeriodError as error:
        raise UserError(str(error)) from None


def _partner(obj: Context, name: str) -> Partner:
    partners = obj.store.partners()
    if not partners:
        raise UserError(word("cli.store_empty"))
    result = find_partner(name, partners)
    if isinstance(result, Found):
        return result.partner
    raise UserError(describe(result))


@cli.command()
@click.argument("name")
@period_option
@as_of_option
@json_option
@click.pass_obj
def kpi(obj: Context, name: str, period: str, as_of: Any, as_json: bool) -> None:
    """One partner's KPIs: NAME is a CRM id, a name, or part of one."""
    chosen = _period(obj, period, as_of)
    partner = _partner(obj, name)
    engine = KpiEngine(obj.store, obj.config.app.kpi_settings)
    day = _as_of(obj, as_of)
    if as_json:
        click.echo(_json(engine.partner(partner.id, chosen, as_of=day)))
        return
    _print_scorecard(engine.scorecard(partner.id, chosen, as_of=day), obj.config.app.currency)


def _print_scorecard(details: Scorecard, currency: str) -> None:
    """A partner's scorecard in the terminal: the KPIs, its current goals, the notes."""
    click.echo(scorecard(details.card, currency, details.has_customers))
    if details.card["goals"]:
        click.echo("\n" + goal_lines(details.card["goals"], currency))
    click.echo(scorecard_notes(details, currency))


@cli.command()
@period_option
@as_of_option
@json_option
@click.pass_obj
def program(obj: Context, period: str, as_of: Any, as_json: bool) -> None:
    """The whole partner program's KPIs."""
    engine = KpiEngine(obj.store, obj.config.app.kpi_settings)
    card = engine.program(_period(obj, period, as_of), as_of=_as_of(obj, as_of))
    if as_json:
        click.echo(_json(card))
        return
    click.echo(scorecard(card, obj.config.app.currency, engine.has_customers()))
    if card["goals"]:
        click.echo("\n" + goal_lines(card["goals"], obj.config.app.currency))


@cli.command()
@click.argument("name", required=False)
@click.option("--program", "program_only", is_flag=True, help="Only the program's goals.")
@as_of_option
@json_option
@click.pass_obj
def goals(obj: Context, name: str | None, program_only: bool, as_of: Any, as_json: bool) -> None:
    """Goals and progress: every goal, NAME's (a CRM id, a name or part of one), or --program's."""
    if name and program_only:
        raise UserError(word("cli.goals_name_or_program"))
    only = PROGRAM if program_only else (_partner(obj, name).id if name else None)
    engine = KpiEngine(obj.store, obj.config.app.kpi_settings)
    found, problems = engine.goals(only, _as_of(obj, as_of))
    for problem in problems:
        click.echo(f"partner-kpi: {problem}", err=True)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    click.echo(goal_table(found, obj.config.app.currency))


@cli.command()
@click.option(
    "--by",
    "kpi_key",
    default="quality_score",
    show_default=True,
    type=click.Choice(sorted(RANKABLE | {ATTAINMENT})),
    help="The KPI to rank by, or attainment: of each partner's current goal on --goal-kpi.",
)
@click.option(
    "--goal-kpi",
    default="won_revenue",
    show_default=True,
    type=click.Choice(PARTNER_KPI_KEYS),
    help="With --by attainment: the KPI whose goals are compared.",
)
@click.option("-n", "count", default=10, show_default=True, type=click.IntRange(min=1))
@period_option
@as_of_option
@click.pass_obj
def top(obj: Context, kpi_key: str, goal_kpi: str, count: int, period: str, as_of: Any) -> None:
    """The partners leading on a KPI (on quality score by default), or on a goal's attainment."""
    chosen = _period(obj, period, as_of)
    engine = KpiEngine(obj.store, obj.config.app.kpi_settings)
    cards = engine.all_partners(chosen, as_of=_as_of(obj, as_of))
    currency = obj.config.app.currency
    if kpi_key == ATTAINMENT:
        pairs = attainment_leaderboard(list(cards.values()), goal_kpi)[:count]
        click.echo(word("cli.top_attainment_title", count=len(pairs), kpi=goal_kpi))
        goal_rows = [
            (i, card["partner"]["name"], goal["period"]["name"], percent(goal["attainment"]),
             status_word(goal["status"]))
            for i, (card, goal) in enumerate(pairs, 1)
        ]  # fmt: skip
        headers = ("#", "partner", "period", "attained", "status")
        click.echo(table(headers, goal_rows, numeric={0, 3}))
        return
    leaders = leaderboard(list(cards.values()), kpi_key)[:count]
    rows = [
        (i, card["partner"]["name"], format_value(kpi_key, value_of(card, kpi_key), currency))
        for i, card in enumerate(leaders, 1)
    ]
    label = KPI_LABELS[kpi_key][0]
    click.echo(word("cli.top_title", count=len(rows), label=label.lower(), period=chosen.name))
    click.echo(table(("#", "partner", label), rows, numeric={0, 2}))


def _json(card: dict[str, Any]) -> str:
    return json.dumps(card, indent=2, ensure_ascii=False)


@cli.group()
def db() -> None:
    """Manage the store's database."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Create the schema or bring it to the newest version."""
    store = open_store(obj.config.database_url, migrate=False, **obj.store_options())
    before, after = upgrade(store.engine)
    if before == after:
        click.echo(word("cli.db_up_to_date", revision=after))
    else:
        click.echo(word("cli.db_upgraded", before=before or word("cli.db_empty"), after=after))


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command line, turning user errors into one sentence each, and
    any other error into one sentence that says where its traceback was written."""
    state = Context(None)
    try:
        cli.main(args=argv, prog_name="partner-kpi", standalone_mode=False, obj=state)
    except click.exceptions.Abort:
        click.echo(word("cli.aborted"), err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except (ConfigError, StoreError, SourceError, DeletionRefused) as error:
        UserError(str(error)).show()
        sys.exit(USAGE_ERROR)
    except DBAPIError as error:  # the store failed mid-command: locked, read-only, gone
        fault = state._store.fault(error) if state._store else StoreError(first_line(error))
        UserError(str(fault)).show()
        sys.exit(USAGE_ERROR)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:
        click.echo(f"partner-kpi: {last_resort(error)}", err=True)
        sys.exit(UNEXPECTED_ERROR)


cli.add_command(alerts)
cli.add_command(digest)
cli.add_command(jobs)
cli.add_command(survey)


def _with_version(command: click.Command) -> None:
    """`--version` on every command and subcommand, as on the group."""
    if command is not cli:
        click.version_option(_package_version(), prog_name="partner-kpi")(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_version(sub)


_with_version(cli)

if __name__ == "__main__":
    main()

"""`partner-kpi digest` and `partner-kpi jobs`: a digest printed, saved or posted now, and the
scheduler's jobs with their next run times (and the alert rules). Registered on the main group
by bot/cli.py."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import click
from slack_sdk import WebClient

from bot.channel_audience import SharedChannelRefused
from bot.cli_alerts import rule_summary
from bot.cli_common import Context, UserError
from bot.console import render_text
from bot.digest import render_digest
from bot.digest_chart import chart_png
from bot.digest_post import ChannelUnavailable, DigestDelivery
from bot.serve_jobs import process_jobs
from bot.terminal import table
from kpi.digest_data import build_digest
from settings.digests import DigestConfig
from templates import word


def _digest_named(obj: Context, name: str) -> DigestConfig:
    digests: list[DigestConfig] = obj.config.app.digests
    for digest in digests:
        if digest.name.casefold() == name.casefold():
            return digest
    known = ", ".join(d.name for d in digests) or word("cli.no_digests")
    raise UserError(word("cli.no_digest", name=name, known=known))


@click.command()
@click.argument("name")
@click.option("--dry-run", "mode", flag_value="dry-run", default=True, help="Print it (default).")
@click.option("--send", "mode", flag_value="send", help="Post it to its channel now.")
@click.option("--json", "as_json", is_flag=True, help="Print the Block Kit JSON.")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False), help="Save the chart PNG.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Run as if on this day at the schedule's time (default: now).",
)
@click.pass_obj
def digest(
    obj: Context, name: str, mode: str, as_json: bool, chart_path: str | None, as_of: Any
) -> None:
    """Print the digest NAME (--dry-run), or post it now (--send)."""
    chosen = _digest_named(obj, name)
    app = obj.config.app
    run_at = datetime.now(UTC)
    if as_of is not None:
        run_at = datetime.combine(as_of.date(), time(hour=run_at.hour), tzinfo=UTC)
    if mode == "send":
        _send(obj, chosen, run_at, chart_path)
        return
    data = build_digest(obj.store, app, chosen, run_at)
    message = render_digest(data, app.currency)
    if chart_path is not None:
        Path(chart_path).write_bytes(chart_png(data, app.currency))
    if as_json:
        click.echo(json.dumps(message.payload(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(message))
    if chart_path is not None:
        click.echo(word("cli.chart_saved", path=chart_path), err=as_json)


def _client() -> WebClient:
    from bot.slack_app import MissingSecret, secret, web_client

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return web_client(secret("SLACK_BOT_TOKEN"))
    except MissingSecret as error:
        raise UserError(str(error)) from None


def _send(obj: Context, chosen: DigestConfig, run_at: datetime, chart_path: str | None) -> None:
    """Posts the digest now, through the scheduler's delivery path, under a key of its own."""
    store = obj.store
    key = f"digest-manual:{chosen.name}:{chosen.channel}:{run_at.isoformat()}"
    detail = {"digest": chosen.name, "channel": chosen.channel}
    try:
        delivery = DigestDelivery(store, obj.config.app, _client())
        delivered = delivery.deliver(
            chosen, run_at, key, prepare=lambda: store.claim(key, "digest", "cli", detail)
        )
    except SharedChannelRefused as error:
        raise UserError(word("cli.digest_not_posted", name=chosen.name, error=error)) from None
    except ChannelUnavailable as error:
        raise UserError(str(error)) from None
    if chart_path is not None:
        chart = delivered.chart or chart_png(delivered.data, obj.config.app.currency)
        Path(chart_path).write_bytes(chart)
    posted = delivered.posted
    chart_note = word(f"cli.digest_chart_{posted.chart}") if posted.chart != "none" else ""
    click.echo(
        word(
            "cli.digest_posted",
            name=chosen.name,
            channel=chosen.channel,
            chart=chart_note,
            ts=posted.ts,
        )
    )


@click.command()
@click.pass_obj
def jobs(obj: Context) -> None:
    """List the scheduled jobs (digests, syncs, survey rounds) with their next run times, and
    the alert rules checked after every sync."""
    found = process_jobs(obj.store, obj.config, None).listing()
    rules = obj.config.app.alerts
    if not found and not rules:
        click.echo(word("cli.no_jobs"))
        return
    rows = []
    for job in found:
        runs = ", ".join(run.strftime("%a %Y-%m-%d %H:%M %Z") for run in job.next_runs)
        rows.append((job.id, job.what, job.schedule, job.timezone, runs or word("cli.never")))
    for rule in rules:
        what = word(
            "cli.alert_job", name=rule.name, rule=rule_summary(rule, obj.config.app.currency)
        )
        rows.append((f"alert:{rule.name}", what, word("cli.after_sync"), "", word("cli.next_sync")))
    click.echo(table(("job", "what", "schedule", "timezone", "next runs"), rows, numeric=set()))

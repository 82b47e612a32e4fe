"""`partner-kpi digest` and `partner-kpi jobs`: a digest printed, saved or posted now, and the
scheduler's jobs with their next run times. Registered on the main group by bot/cli.py."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import click
from slack_sdk import WebClient

from bot.blockkit import Message
from bot.channel_audience import SharedChannelRefused, audience_or_refusal
from bot.console import render_text
from bot.digest import (
    ChannelUnavailable,
    build_digest,
    chart_png,
    partner_only,
    post_digest,
    render_chart_fallback,
    render_digest,
)
from bot.scheduler import DigestScheduler
from bot.terminal import table
from kpi.snapshots import save_snapshot
from settings.slack import DigestConfig


def _error(message: str) -> click.ClickException:
    from bot.cli import UserError

    return UserError(message)


def _digest_named(obj: Any, name: str) -> DigestConfig:
    digests: list[DigestConfig] = obj.config.app.digests
    for digest in digests:
        if digest.name.casefold() == name.casefold():
            return digest
    known = ", ".join(d.name for d in digests) or "none: add one under digests: in app.yaml"
    raise _error(f"no digest is named {name!r}; the digests are {known}.")


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
    obj: Any, name: str, mode: str, as_json: bool, chart_path: str | None, as_of: Any
) -> None:
    """Print the digest NAME (--dry-run), or post it now (--send)."""
    chosen = _digest_named(obj, name)
    app = obj.config.app
    run_at = datetime.now(UTC)
    if as_of is not None:
        run_at = datetime.combine(as_of.date(), time(hour=run_at.hour), tzinfo=UTC)
    client = _client() if mode == "send" else None
    partner = None
    if client is not None:
        try:
            partner = audience_or_refusal(
                obj.store, client, app.access, chosen.channel, f"digest {chosen.name}"
            )
        except SharedChannelRefused as error:
            raise _error(f"Digest {chosen.name} was not posted: {error}.") from None
    if partner is not None:
        chosen = partner_only(chosen, partner)
    data = build_digest(obj.store, app, chosen, run_at, partner_view=partner is not None)
    message = render_digest(data, app.currency)
    wants_chart = chart_path is not None or (mode == "send" and data.shows("chart"))
    chart = chart_png(data, app.currency) if wants_chart else None
    if chart_path is not None and chart is not None:
        Path(chart_path).write_bytes(chart)
    if client is not None:
        _send(obj, client, chosen, data, message, chart)
        return
    if as_json:
        click.echo(json.dumps(message.payload(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(message))
    if chart_path is not None:
        click.echo(f"\nChart saved to {chart_path}.", err=as_json)


def _client() -> WebClient:
    from bot.slack_app import MissingSecret, secret, web_client

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return web_client(secret("SLACK_BOT_TOKEN"))
    except MissingSecret as error:
        raise _error(str(error)) from None


def _send(
    obj: Any,
    client: WebClient,
    chosen: DigestConfig,
    data: Any,
    message: Message,
    chart: bytes | None,
) -> None:
    app = obj.config.app
    key = f"digest-manual:{chosen.name}:{chosen.channel}:{data.run_at.isoformat()}"
    obj.store.claim(key, "digest", "cli", {"digest": chosen.name, "channel": chosen.channel})
    fallback = render_chart_fallback(data, app.currency) if chart is not None else None
    try:
        posted = post_digest(client, chosen, message, chart, fallback, key=key)
    except ChannelUnavailable as error:
        raise _error(str(error)) from None
    obj.store.mark_sent(key, posted.ts)
    save_snapshot(obj.store, data.run_at, data.period, data.cards, program=data.program_card)
    chart_note = {"uploaded": " with its chart", "text": " with the chart as text"}.get(
        posted.chart, ""
    )
    click.echo(f"Posted digest {chosen.name} to {chosen.channel}{chart_note} (ts {posted.ts}).")


@click.command()
@click.pass_obj
def jobs(obj: Any) -> None:
    """List the scheduled jobs (digests, syncs and survey rounds) with their next run times."""
    from bot.surveys.tick import survey_jobs

    scheduler = DigestScheduler(obj.store, obj.config, None)
    found = scheduler.jobs() + survey_jobs(obj.config, scheduler.clock())
    if not found:
        click.echo("No scheduled jobs: add digests, scheduler.sync or surveys to app.yaml.")
        return
    rows = []
    for job in found:
        runs = ", ".join(run.strftime("%a %Y-%m-%d %H:%M %Z") for run in job.next_runs)
        rows.append((job.id, job.what, job.schedule, job.timezone, runs or "never"))
    click.echo(table(("job", "what", "schedule", "timezone", "next runs"), rows, numeric=set()))

"""`partner-kpi alerts --dry-run`: what app.yaml's alert rules would post if they were checked
now, without claiming or posting anything. Registered on the main group by bot/cli.py."""

from __future__ import annotations

from datetime import datetime

import click

from bot.alerts.events import AlertEvent
from bot.alerts.job import AlertJob
from bot.cli_common import Context, UserError
from bot.formatting import format_value
from settings.alerts import AlertRule
from settings.periods import today_in


def rule_summary(rule: AlertRule, currency: str) -> str:
    """One line of what a rule watches, for `alerts` and `jobs`."""
    if rule.kpi == "sync":
        return f"sync refused, or failed {rule.sync_failures} times in a row → {rule.channel}"
    if rule.kpi == "tier":
        return f"earned tier ({rule.period}) changed → {rule.channel}"
    scope = "" if rule.scope == "partners" else " of the program"
    if rule.comparison.endswith("percent"):
        threshold = f"{rule.threshold:g}%"
    else:
        threshold = format_value(rule.kpi, rule.threshold, currency)
    return f"{rule.kpi}{scope} ({rule.period}) {rule.comparison} {threshold} → {rule.channel}"


def _event_line(rule: AlertRule, event: AlertEvent, currency: str) -> str:
    who = event.name
    if rule.kpi == "sync":
        return f"  {event.kind}: last sync {event.value} {event.previous or ''}".rstrip()
    if rule.kpi == "tier":
        before = event.previous or "none"
        return f"  {event.kind}: {who}: {before} → {event.value or 'none'}"
    now = format_value(rule.kpi, event.value, currency)
    before = format_value(rule.kpi, event.previous, currency)
    return f"  {event.kind}: {who}: {now} (previous period {before})"


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be posted now; post nothing.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="Today, for the periods.")
@click.pass_obj
def alerts(obj: Context, dry_run: bool, as_of: datetime | None) -> None:
    """Show what the alert rules would post if checked now (they are posted by `serve` after
    every sync)."""
    if not dry_run:
        raise UserError(
            "alerts are posted by `partner-kpi serve` after every sync; "
            "`partner-kpi alerts --dry-run` shows what would be posted now."
        )
    app = obj.config.app
    if not app.alerts:
        click.echo("No alert rules: add them under alerts: in app.yaml.")
        return
    latest = obj.store.last_sync(status=None)
    version = latest.id + 1 if latest is not None else 1  # as if the next sync had just ended
    today = as_of.date() if as_of is not None else today_in(app.tz)
    job = AlertJob(obj.store, app, None, today=lambda: today)
    for rule, outcome in zip(app.alerts, job.check(version, post=False), strict=True):
        told = [e for e in outcome.events if e.kind != "baseline"]
        baseline = len(outcome.events) - len(told)
        click.echo(f"{rule.name}: {rule_summary(rule, app.currency)}")
        if outcome.detail:
            click.echo(f"  could not be checked: {outcome.detail}")
        for event in told:
            click.echo(_event_line(rule, event, app.currency))
        if baseline:
            click.echo(f"  {baseline} partner tier(s) would be remembered, not posted (first look)")
        if not outcome.events and not outcome.detail:
            click.echo("  nothing would be posted")

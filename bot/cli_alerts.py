"""`partner-kpi alerts --dry-run`: what app.yaml's alert rules would post if they were checked
now, without claiming or posting anything. Registered on the main group by bot/cli.py."""

from __future__ import annotations

from datetime import datetime

import click

from bot.alerts.events import AlertEvent
from bot.alerts.job import AlertJob
from bot.cli_common import Context, UserError
from bot.formatting import format_value
from bot.goal_text import goal_line, status_word
from settings.alerts import AlertRule
from settings.periods import today_in
from templates import word


def rule_summary(rule: AlertRule, currency: str) -> str:
    """One line of what a rule watches, for `alerts` and `jobs`."""
    if rule.kpi == "sync":
        return word("cli.alert_rule_sync", count=rule.sync_failures, channel=rule.channel)
    if rule.kpi == "tier":
        return word("cli.alert_rule_tier", period=rule.period, channel=rule.channel)
    if rule.kpi == "goal_status":
        return word(
            "cli.alert_rule_goals",
            scope=word("cli.alert_rule_program") if rule.scope == "program" else "",
            statuses=", ".join(rule.statuses or []) or word("cli.alert_any_status"),
            channel=rule.channel,
        )
    if rule.comparison.endswith("percent"):
        threshold = f"{rule.threshold:g}%"
    else:
        threshold = format_value(rule.kpi, rule.threshold, currency)
    return word(
        "cli.alert_rule_kpi",
        kpi=rule.kpi,
        scope="" if rule.scope == "partners" else word("cli.alert_rule_program"),
        period=rule.period,
        comparison=rule.comparison,
        threshold=threshold,
        channel=rule.channel,
    )


def _event_line(rule: AlertRule, event: AlertEvent, currency: str) -> str:
    if rule.kpi == "sync":
        line = word(
            "cli.alert_event_sync", kind=event.kind, status=event.value, error=event.previous or ""
        )
        return line.rstrip()
    if rule.kpi == "goal_status" and event.goal is not None:
        return word(
            "cli.alert_event_goal",
            kind=event.kind,
            name=event.name,
            line=goal_line(event.goal, currency),
            before=status_word(event.previous),
        )
    if rule.kpi == "tier":
        none = word("cli.alert_no_tier")
        return word(
            "cli.alert_event_tier",
            kind=event.kind,
            name=event.name,
            before=event.previous or none,
            after=event.value or none,
        )
    return word(
        "cli.alert_event_kpi",
        kind=event.kind,
        name=event.name,
        now=format_value(rule.kpi, event.value, currency),
        before=format_value(rule.kpi, event.previous, currency),
    )


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be posted now; post nothing.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="Today, for the periods.")
@click.pass_obj
def alerts(obj: Context, dry_run: bool, as_of: datetime | None) -> None:
    """Show what the alert rules would post if checked now (they are posted by `serve` after
    every sync)."""
    if not dry_run:
        raise UserError(word("cli.alerts_serve_only"))
    app = obj.config.app
    if not app.alerts:
        click.echo(word("cli.no_alert_rules"))
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
            click.echo(word("cli.alert_unchecked", detail=outcome.detail))
        for event in told:
            click.echo(_event_line(rule, event, app.currency))
        if baseline:
            key = "cli.alert_goal_baselines" if rule.kpi == "goal_status" else "cli.alert_baselines"
            click.echo(word(key, count=baseline))
        if not outcome.events and not outcome.detail:
            click.echo(word("cli.alert_nothing"))

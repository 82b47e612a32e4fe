"""`partner-kpi survey status [CAMPAIGN]` and `partner-kpi survey send CAMPAIGN [--dry-run |
--send]`. Registered on the main group by bot/cli.py."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import click

from bot.cli_common import Context, UserError
from bot.jobs import utc_now
from bot.surveys.sender import SurveySender
from bot.terminal import table
from kpi import surveys as db
from settings.secrets import Secrets
from settings.slack import SurveyCampaign

NO_CAMPAIGNS = """No survey campaigns yet. Add one to app.yaml, e.g.:

surveys:
  - name: quarterly-nps
    schedule: "0 9 * 1,4,7,10 tue#1"   # the first Tuesday of each quarter, 09:00
    results_channel: C0123456789       # where the results go

then `partner-kpi survey send quarterly-nps` shows who it would ask (the README's Surveys
section lists every setting)."""


def _error(message: str) -> click.ClickException:
    return UserError(message)


def _campaigns(obj: Context, name: str | None) -> list[SurveyCampaign]:
    campaigns: list[SurveyCampaign] = obj.config.app.surveys
    if name is None:
        if not campaigns:
            raise _error("no survey campaigns; add one under surveys: in app.yaml.")
        return campaigns
    for campaign in campaigns:
        if campaign.name.casefold() == name.casefold():
            return [campaign]
    known = ", ".join(c.name for c in campaigns) or "none: add one under surveys: in app.yaml"
    raise _error(f"no survey campaign is named {name!r}; the campaigns are {known}.")


def _client() -> Any:
    from bot.slack_app import web_client

    token = Secrets().value("SLACK_BOT_TOKEN")
    return web_client(token) if token else None


@click.group()
def survey() -> None:
    """Survey campaigns: their status, and who a round asks."""


def status_lines(sender: SurveySender, campaign: SurveyCampaign, now: datetime) -> list[str]:
    lines = [f"Survey {campaign.name}: {campaign.question}"]
    past = db.rounds(sender.store, campaign.name)
    if past:
        the_round = past[-1]
        delivered = db.deliveries(sender.store, campaign.name, the_round.round_id)
        sent = sum(1 for d in delivered if d.sent_at is not None)
        answered = sum(1 for d in delivered if d.answered)
        rate = f"{100 * answered / sent:.0f}%" if sent else "n/a"
        state = "closed" if the_round.is_closed(now) else "open"
        lines.append(
            f"Round {the_round.round_id} ({state}, closes "
            f"{sender.when(the_round.closes_at, campaign)}): sent {sent}, answered {answered}, "
            f"response rate {rate}"
        )
    else:
        lines.append("No round sent yet.")
    audience = sender.audience(campaign, now, lookup=False)
    lines.append(
        f"Contacts: {len(audience.asked)} in Slack, {len(audience.unresolved)} not found in "
        f"Slack, {len(audience.opted_out)} opted out, {len(audience.lookup_errors)} not looked "
        "up yet"
    )
    for contact in audience.unresolved:
        lines.append(f"  unresolved: {contact.email} ({contact.partner_name})")
    upcoming = sender.next_round(campaign, now)
    if upcoming is not None:
        lines.append(f"Next round: {sender.when(upcoming, campaign)}")
    return lines


@survey.command()
@click.argument("campaign", required=False)
@click.pass_obj
def status(obj: Context, campaign: str | None) -> None:
    """Sent, answered, unresolved contacts and response rate of each campaign's latest round."""
    if campaign is None and not obj.config.app.surveys:
        click.echo(NO_CAMPAIGNS)
        return
    sender = SurveySender(obj.store, obj.config, None)
    now = utc_now()
    blocks = ["\n".join(status_lines(sender, chosen, now)) for chosen in _campaigns(obj, campaign)]
    click.echo("\n\n".join(blocks))


@survey.command()
@click.argument("campaign")
@click.option("--dry-run", "mode", flag_value="dry-run", default=True, help="List (default).")
@click.option("--send", "mode", flag_value="send", help="Send the round now.")
@click.pass_obj
def send(obj: Context, campaign: str, mode: str) -> None:
    """Show who the round of CAMPAIGN asks (--dry-run), or send it now (--send): the open round
    (scheduled, or the ad-hoc round an earlier send started), or else an ad-hoc round that starts
    now and gets its reminder and results like a scheduled one. Nobody is asked twice in a
    round."""
    chosen = _campaigns(obj, campaign)[0]
    client = _client()
    if mode == "send" and client is None:
        raise _error(
            "SLACK_BOT_TOKEN is not set; export it in the environment (never in app.yaml)."
        )
    sender = SurveySender(obj.store, obj.config, client, replica="cli")
    now = utc_now()
    times = sender.round_to_send(chosen, now)
    if mode == "send":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        report = sender.send_round(chosen, times, now)
        click.echo(
            f"Round {times.round_id} of {chosen.name}: {report.sent} sent, {report.already} "
            f"asked before, {report.failed} failed, {report.unresolved} not found in Slack, "
            f"{report.opted_out} opted out."
        )
        return
    audience = sender.audience(chosen, now, lookup=client is not None)
    asked = {d.slack_user_id for d in db.deliveries(obj.store, chosen.name, times.round_id)}
    rows = []
    for contact, user_id in audience.asked:
        rows.append(
            (contact.partner_name, contact.email, user_id, "asked" if user_id in asked else "ask")
        )
    for contact, user_id in audience.opted_out:
        rows.append((contact.partner_name, contact.email, user_id, "opted out"))
    for contact in audience.unresolved:
        rows.append((contact.partner_name, contact.email, "", "not in Slack"))
    for contact, _ in audience.lookup_errors:
        rows.append((contact.partner_name, contact.email, "", "not looked up"))
    click.echo(f"Round {times.round_id} of {chosen.name} (dry run: nothing is sent):")
    if rows:
        click.echo(table(("partner", "email", "Slack user", "action"), rows, numeric=set()))
    else:
        click.echo("No contacts in the audience.")
    would = sum(1 for row in rows if row[3] == "ask")
    click.echo(f"{would} would be asked.")

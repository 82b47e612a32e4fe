"""`partner-kpi survey status [CAMPAIGN]` and `partner-kpi survey send CAMPAIGN [--dry-run |
--send]`. Registered on the main group by bot/cli.py."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import click

from bot.cli_common import Context, UserError
from bot.formatting import format_value
from bot.jobs import utc_now
from bot.surveys.sender import SurveySender
from bot.terminal import table
from kpi import surveys as db
from settings.secrets import Secrets
from settings.slack import SurveyCampaign
from templates import word, word_table


def _campaigns(obj: Context, name: str | None) -> list[SurveyCampaign]:
    campaigns: list[SurveyCampaign] = obj.config.app.surveys
    if name is None:
        if not campaigns:
            raise UserError(word("cli.no_campaigns"))
        return campaigns
    for campaign in campaigns:
        if campaign.name.casefold() == name.casefold():
            return [campaign]
    known = ", ".join(c.name for c in campaigns) or word("cli.no_campaigns_known")
    raise UserError(word("cli.no_campaign", name=name, known=known))


def _client() -> Any:
    from bot.slack_app import web_client

    token = Secrets().value("SLACK_BOT_TOKEN")
    return web_client(token) if token else None


@click.group()
def survey() -> None:
    """Survey campaigns: their status, and who a round asks."""


def status_lines(sender: SurveySender, campaign: SurveyCampaign, now: datetime) -> list[str]:
    lines = [word("cli.survey_title", name=campaign.name, question=campaign.question)]
    past = db.rounds(sender.store, campaign.name)
    if past:
        the_round = past[-1]
        delivered = db.deliveries(sender.store, campaign.name, the_round.round_id)
        sent = sum(1 for d in delivered if d.sent_at is not None)
        answered = sum(1 for d in delivered if d.answered)
        rate = format_value("close_rate", answered / sent if sent else None)
        closed = the_round.is_closed(now)
        state = word("cli.survey_round_closed" if closed else "cli.survey_round_open")
        lines.append(
            word(
                "cli.survey_round",
                round=the_round.round_id,
                state=state,
                closes=sender.when(the_round.closes_at, campaign),
                sent=sent,
                answered=answered,
                rate=rate,
            )
        )
    else:
        lines.append(word("cli.survey_no_round"))
    audience = sender.audience(campaign, now, lookup=False)
    lines.append(
        word(
            "cli.survey_contacts",
            asked=len(audience.asked),
            unresolved=len(audience.unresolved),
            opted_out=len(audience.opted_out),
            errors=len(audience.lookup_errors),
        )
    )
    for contact in audience.unresolved:
        lines.append(
            word("cli.survey_unresolved", email=contact.email, partner=contact.partner_name)
        )
    upcoming = sender.next_round(campaign, now)
    if upcoming is not None:
        lines.append(word("cli.survey_next_round", when=sender.when(upcoming, campaign)))
    return lines


@survey.command()
@click.argument("campaign", required=False)
@click.pass_obj
def status(obj: Context, campaign: str | None) -> None:
    """Sent, answered, unresolved contacts and response rate of each campaign's latest round."""
    if campaign is None and not obj.config.app.surveys:
        click.echo(word("cli.no_campaigns_yet"))
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
        raise UserError(word("cli.no_bot_token"))
    sender = SurveySender(obj.store, obj.config, client, replica="cli")
    now = utc_now()
    times = sender.round_to_send(chosen, now)
    if mode == "send":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        report = sender.send_round(chosen, times, now)
        click.echo(
            word(
                "cli.survey_sent",
                round=times.round_id,
                name=chosen.name,
                sent=report.sent,
                already=report.already,
                failed=report.failed,
                unresolved=report.unresolved,
                opted_out=report.opted_out,
            )
        )
        return
    audience = sender.audience(chosen, now, lookup=client is not None)
    asked = {d.slack_user_id for d in db.deliveries(obj.store, chosen.name, times.round_id)}
    action = word_table("cli.survey_actions")
    rows = []
    for contact, user_id in audience.asked:
        todo = action["asked"] if user_id in asked else action["ask"]
        rows.append((contact.partner_name, contact.email, user_id, todo))
    for contact, user_id in audience.opted_out:
        rows.append((contact.partner_name, contact.email, user_id, action["opted_out"]))
    for contact in audience.unresolved:
        rows.append((contact.partner_name, contact.email, "", action["not_in_slack"]))
    for contact, _ in audience.lookup_errors:
        rows.append((contact.partner_name, contact.email, "", action["not_looked_up"]))
    click.echo(word("cli.survey_dry_run", round=times.round_id, name=chosen.name))
    if rows:
        click.echo(table(("partner", "email", "Slack user", "action"), rows, numeric=set()))
    else:
        click.echo(word("cli.survey_no_contacts"))
    would = sum(1 for row in rows if row[3] == action["ask"])
    click.echo(word("cli.survey_would_ask", count=would))

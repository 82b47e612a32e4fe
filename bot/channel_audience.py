"""Who reads a channel the bot posts into: only our own organisation, or also another one.

Before a share, a digest or survey results are posted, the channel is looked up: a channel
shared with another organisation (Slack Connect) may carry only the partner it is mapped to in
`access.external.channels`, and then that partner alone; unmapped, or when Slack cannot say,
nothing is posted and the refusal is audited.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.access import FactUnavailable
from bot.slack_facts import SlackFacts
from kpi.store import Store
from settings.app import AppConfig
from settings.slack import AccessConfig
from templates import word

log = logging.getLogger("partner_kpi.slack")

#: The audit log's user id for posts the bot makes on its own (digests, survey results).
SCHEDULER = "(scheduler)"


class SharedChannelRefused(Exception):
    """A post refused because the channel is, or may be, shared with another organisation."""


class ChannelUnchecked(SharedChannelRefused):
    """Slack could not say whether the channel is shared (`cause`): refused all the same."""

    def __init__(self, sentence: str, cause: str) -> None:
        super().__init__(sentence)
        self.cause = cause


def channel_partner(facts: SlackFacts, access: AccessConfig, channel: str) -> str | None:
    """None for a channel of our organisation only; the mapped partner's id for a channel
    shared with that partner. Raises SharedChannelRefused (one sentence) otherwise."""
    try:
        sharing = facts.channel_sharing(channel)
    except FactUnavailable as error:
        raise ChannelUnchecked(
            word("faults.channel_unchecked", channel=channel, cause=error.cause), error.cause
        ) from None
    if not sharing.external:
        return None
    mapped = access.external.channels
    partner = mapped.get(sharing.channel_id) or mapped.get(channel)
    if partner is None:
        raise SharedChannelRefused(
            word("faults.shared_channel", channel=channel, channel_id=sharing.channel_id)
        )
    return partner


def audience_or_refusal(
    store: Store, client: WebClient, access: AccessConfig, channel: str, what: str
) -> str | None:
    """`channel_partner` with the refusal audited and logged, then raised again."""
    try:
        return channel_partner(SlackFacts(client), access, channel)
    except SharedChannelRefused as error:
        log.error("%s: %s.", what, error)
        store.audit(SCHEDULER, f"{what} to {channel}", False, str(error), channel_id=channel)
        raise


def check_post_channels(facts: SlackFacts, app: AppConfig) -> list[str]:
    """At start: one sentence for each digest, survey results or alert channel that is shared
    with another organisation and not mapped to a partner (or that Slack cannot describe now)."""
    posts = [(f"digest {d.name}", d.channel) for d in app.digests]
    posts += [(f"survey {c.name} results", c.results_channel) for c in app.surveys]
    posts += [(f"alert {rule.name}", rule.channel) for rule in app.alerts]
    problems = []
    for what, channel in posts:
        try:
            channel_partner(facts, app.access, channel)
        except SharedChannelRefused as error:
            problems.append(f"{what}: {error}.")
    return problems

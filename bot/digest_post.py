"""Posting a digest, and the one delivery path of the scheduler and `partner-kpi digest --send`.

`DigestDelivery.deliver` checks who reads the channel (a channel shared with a partner gets that
partner alone, bot/channel_audience.py), builds the digest, stores its KPI snapshot, posts it with
its chart in the thread, and records the post in the send log. `post_digest` posts the message and
uploads the chart into its thread (files_upload_v2), with a text table instead when the upload
fails; each post carries its send-log key in its metadata, where `find_posted` finds it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blockkit import Message
from bot.channel_audience import audience_or_refusal
from bot.digest import render_chart_fallback, render_digest
from bot.digest_chart import chart_labels, chart_png
from bot.keyed_posts import find_keyed_post, keyed_metadata
from kpi.digest_data import DigestData, build_digest, partner_only
from kpi.snapshots import save_snapshot
from kpi.store import Store
from settings.app import AppConfig
from settings.digests import DigestConfig
from templates import word

log = logging.getLogger("partner_kpi.digest")

#: Slack errors that mean the bot cannot post to the channel until a person acts.
CHANNEL_ERRORS = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
)
#: The event_type of the message metadata each digest post carries, with its send-log key.
DIGEST_EVENT = "partner_kpi_digest"


class ChannelUnavailable(Exception):
    """The bot cannot post to a digest's channel; the message says what to do."""


@dataclass(frozen=True)
class Delivered:
    """A digest delivered: what it showed, its chart (None: not drawn) and its post."""

    data: DigestData
    chart: bytes | None
    posted: Posted


@dataclass(frozen=True)
class DigestDelivery:
    """Where digests go: the store (snapshots, send log), the app's settings and Slack."""

    store: Store
    app: AppConfig
    client: WebClient
    chart: bool = True  # False: never drawn (tests)

    def deliver(
        self,
        digest: DigestConfig,
        run_at: datetime,
        key: str,
        now: datetime | None = None,
        prepare: Callable[[], object] | None = None,
    ) -> Delivered:
        """Delivers the run of `digest` at `run_at` under the send-log `key`: the shared-channel
        check, `prepare` (once the channel may take it: the scheduler's sync of old data, the
        CLI's claim), build, snapshot, post with the chart, `mark_sent`. Raises
        SharedChannelRefused (audited) or ChannelUnavailable, and nothing is marked then."""
        store, app = self.store, self.app
        what = f"digest {digest.name}"
        partner = audience_or_refusal(store, self.client, app.access, digest.channel, what)
        if prepare is not None:
            prepare()
        chosen = partner_only(digest, partner) if partner else digest
        data = build_digest(store, app, chosen, run_at, now=now, partner_view=partner is not None)
        save_snapshot(store, run_at, data.period, data.cards, program=data.program_card)
        png = chart_png(data, app.currency) if self.chart and data.shows("chart") else None
        fallback = render_chart_fallback(data, app.currency) if png is not None else None
        message = render_digest(data, app.currency)
        posted = post_digest(self.client, data.digest, message, png, fallback, key=key)
        store.mark_sent(key, posted.ts)
        return Delivered(data, png, posted)


@dataclass(frozen=True)
class Posted:
    channel: str  # the channel's id, as Slack answered
    ts: str
    chart: str  # "uploaded", "text" (the fallback table) or "none"


def post_digest(
    client: WebClient,
    digest: DigestConfig,
    message: Message,
    chart: bytes | None,
    chart_fallback: Message | None,
    key: str | None = None,
) -> Posted:
    """Posts the digest, then its chart into the message's thread. Raises ChannelUnavailable
    when the bot cannot post in the channel; a failed chart upload falls back to text. `key`
    (the send log's) goes into the message's metadata, where `find_posted` finds it again."""
    metadata = keyed_metadata(DIGEST_EVENT, key) if key else None
    try:
        response = client.chat_postMessage(
            channel=digest.channel,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
        )
    except SlackApiError as error:
        _raise_for_channel(digest, error)
        raise
    channel, ts = str(response["channel"]), str(response["ts"])
    if chart is None:
        return Posted(channel, ts, "none")
    labels = chart_labels(digest.name)
    try:
        client.files_upload_v2(
            channel=channel,
            thread_ts=ts,
            file=chart,
            filename=f"digest-{digest.name}.png",
            title=labels["file_title"],
            alt_txt=labels["alt_text"],
        )
        return Posted(channel, ts, "uploaded")
    except (SlackApiError, URLError, OSError) as error:  # HTTPError is a URLError
        log.warning("digest %s: chart upload failed (%s); posting a text table", digest.name, error)
    if chart_fallback is None:
        return Posted(channel, ts, "none")
    try:
        client.chat_postMessage(
            channel=channel,
            thread_ts=ts,
            text=chart_fallback.text,
            blocks=chart_fallback.blocks,
        )
    except SlackApiError as error:
        log.warning("digest %s: chart text failed too: %s", digest.name, error)
        return Posted(channel, ts, "none")
    return Posted(channel, ts, "text")


def _raise_for_channel(digest: DigestConfig, error: SlackApiError) -> None:
    code = str(error.response.get("error", ""))
    if code in CHANNEL_ERRORS:
        raise ChannelUnavailable(
            word("faults.digest_channel", name=digest.name, channel=digest.channel, code=code)
        ) from None


def find_posted(
    client: WebClient, digest: DigestConfig, key: str, oldest: datetime, page_size: int = 200
) -> str | None:
    """The ts of the digest post carrying `key` in its metadata, posted in the digest's
    channel after `oldest`, or None. Raises ChannelUnavailable when the bot cannot read the
    channel, and SlackApiError otherwise (missing_scope without channels:history)."""
    try:
        return find_keyed_post(client, digest.channel, DIGEST_EVENT, key, oldest, page_size)
    except SlackApiError as error:
        _raise_for_channel(digest, error)
        raise

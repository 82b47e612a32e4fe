"""A scheduled digest: the week's picture of the partner program, for one channel, in words.

The digest lives in four places, one job each: kpi/digest_data.py gathers what it shows (and
queries the store for it), templates/digest.json.j2 says it as one compact Block Kit message
(rendered here), bot/digest_chart.py draws its chart, and bot/digest_post.py posts it (the one
delivery path of the scheduler and `partner-kpi digest --send`).
"""

from __future__ import annotations

from bot.blockkit import Message
from bot.messages import render
from kpi.digest_data import DigestData


def render_digest(data: DigestData, currency: str) -> Message:
    return render("digest", d=data, currency=currency)


def render_chart_fallback(data: DigestData, currency: str) -> Message:
    """The chart as a text table, posted when its upload fails."""
    return render("digest_chart", d=data, currency=currency)

"""The digest's chart: won revenue per week, partner versus direct, as a PNG (matplotlib, Agg
backend). Its words are in templates/digest_chart_labels.json.j2."""

from __future__ import annotations

import io
import json

from bot.formatting import money
from bot.messages import ENVIRONMENT
from kpi.digest_data import DigestData


def chart_labels(digest: str, period: str = "") -> dict[str, str]:
    """The chart's title (of the period `period`), legend, upload title and alt text (of the
    digest named `digest`)."""
    template = ENVIRONMENT.get_template("digest_chart_labels.json.j2")
    labels: dict[str, str] = json.loads(template.render(period=period, digest=digest))
    return labels


def chart_png(data: DigestData, currency: str) -> bytes:
    """Won revenue per week, partner versus direct, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    labels = chart_labels(data.digest.name, data.period.name)
    figure = Figure(figsize=(8, 3.6), dpi=100)
    axes = figure.subplots()
    positions = list(range(len(data.weeks)))
    width = 0.4
    axes.bar(
        [x - width / 2 for x in positions],
        [week.partner for week in data.weeks],
        width,
        label=labels["partner"],
        color="#2e7d32",
    )
    axes.bar(
        [x + width / 2 for x in positions],
        [week.direct for week in data.weeks],
        width,
        label=labels["direct"],
        color="#90a4ae",
    )
    axes.set_xticks(positions)
    axes.set_xticklabels([f"{week.start:%d %b}" for week in data.weeks], fontsize=8)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: money(value, currency)))
    axes.set_title(labels["title"], fontsize=11)
    axes.legend(frameon=False, fontsize=9)
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

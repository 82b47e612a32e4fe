"""The DuckDB baseline: the same every-partner KPIs (kpi-spec.md sections 3, 4 and 7; not the
training line of section 8) written as
DuckDB SQL over in-memory tables copied out of the store, to tell how far the engine is from what
a column store does with the same data (issue #18: "engine no slower than 2x DuckDB").

DuckDB's SQLite scanner is an extension that DuckDB downloads on `INSTALL sqlite`; the Python
wheel does not bundle it and this machine reaches only package registries. So `load` copies the
needed columns of the store with Python's sqlite3, in chunks of numpy arrays that DuckDB scans,
into typed in-memory tables (timed apart, like pandas' read). `prepare` does the
period-independent work once, as the pandas baseline does (partner deals with their cycle and
registration day; stage changes of known deals with their deal's partner; the ended stays of
partner deals with their length).
`all_partners` is the engine's `all_partners`: for one period every partner's KPIs, channels,
stages, quality score and rank, and the previous period's KPIs, as cards of the engine's shape
(so a check can compare them key by key); `one_partner` is one partner's card, ranking every
partner as the quality score must.

Window boundaries come from `kpi.aggregates.Window`: dates for the date columns, naive-UTC
instants of the deployment's midnights for the timestamps, exactly as the engine bounds them.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np

from kpi.aggregates import Window
from kpi.formulas import KPI_KEYS
from kpi.models import Channel

CHUNK = 250_000  # rows per copied chunk: bounds the copy's Python memory

#: (query on the store, DuckDB columns) of each copied table: only the columns the KPIs read.
TABLES: dict[str, tuple[str, str]] = {
    "partners": (
        "SELECT id, joined_on, left_on FROM partners",
        "id VARCHAR, joined_on DATE, left_on DATE",
    ),
    "deals": (
        "SELECT id, partner_id, status, amount, created_on, closed_on, type, channel,"
        " registered, registered_on, csat FROM deals",
        "id VARCHAR, partner_id VARCHAR, status VARCHAR, amount DOUBLE, created_on DATE,"
        " closed_on DATE, type VARCHAR, channel VARCHAR, registered BOOLEAN,"
        " registered_on DATE, csat INTEGER",
    ),
    "stage_changes": (
        "SELECT deal_id, stage, entered_at, left_at FROM stage_changes",
        "deal_id VARCHAR, stage VARCHAR, entered_at TIMESTAMP, left_at TIMESTAMP",
    ),
    "trainings": (
        "SELECT partner_id, completed_on FROM trainings",
        "partner_id VARCHAR, completed_on DATE",
    ),
    "survey_responses": (
        "SELECT partner_id, score, submitted_at FROM survey_responses",
        "partner_id VARCHAR, score INTEGER, submitted_at TIMESTAMP",
    ),
    "customers": (
        "SELECT id, partner_id, became_customer_on, churned_on, mrr, onboarded_on, referred_by"
        " FROM customers",
        "id VARCHAR, partner_id VARCHAR, became_customer_on DATE, churned_on DATE, mrr DOUBLE,"
        " onboarded_on DATE, referred_by VARCHAR",
    ),
    "support_tickets": (
        "SELECT customer_id, opened_at FROM support_tickets",
        "customer_id VARCHAR, opened_at TIMESTAMP",
    ),
}


def load(db_path: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database holding the needed columns of the store's tables, running
    queries on `threads` threads (None: DuckDB's default, one per core)."""
    target = duckdb.connect()
    if threads is not None:
        target.execute(f"SET threads = {int(threads)}")
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for name, (query, columns) in TABLES.items():
            target.execute(f"CREATE TABLE {name} ({columns})")
            cursor = source.execute(query)
            names = [column[0] for column in cursor.description]
            while rows := cursor.fetchmany(CHUNK):
                # DuckDB scans a dict of numpy arrays; the INSERT casts the store's text dates
                # and timestamps (SQLAlchemy's ISO format) and 0/1 booleans to the column types.
                chunk = {  # noqa: F841 (read by name in the SQL below)
                    column: np.array(values, dtype=object)
                    for column, values in zip(names, zip(*rows, strict=True), strict=True)
                }
                target.execute(f"INSERT INTO {name} SELECT * FROM chunk")
    finally:
        source.close()
    return target


def prepare(connection: duckdb.DuckDBPyConnection) -> None:
    """The period-independent work, once per load (as `bench.pandas_baseline.prepare`). The
    tables are sorted by the date the period filters read most, so DuckDB's per-row-group
    min/max skip most of them (20% less CPU for every partner's cards at a million deals)."""
    connection.execute(
        """
        CREATE TABLE partner_deals AS
        SELECT partner_id, status, amount, created_on, closed_on, type, channel, registered,
               coalesce(registered_on, created_on) AS registered_day, csat,
               greatest(closed_on - created_on, 0) AS cycle
        FROM deals WHERE partner_id IS NOT NULL
        ORDER BY closed_on
        """
    )
    # Changes of unknown deals are ignored; a direct deal's partner is NULL (it counts in the
    # stage shares' denominator only).
    connection.execute(
        """
        CREATE TABLE changes AS
        SELECT d.partner_id, c.stage, c.entered_at
        FROM stage_changes c JOIN deals d ON d.id = c.deal_id
        ORDER BY c.entered_at
        """
    )
    # The ended stays of partner deals, sorted by their end: the filter on a period's ends then
    # skips row groups too (sorted by the start instead, it took twice as long).
    connection.execute(
        """
        CREATE TABLE stays AS
        SELECT d.partner_id, c.stage, c.left_at,
               epoch(c.left_at - c.entered_at) / 86400.0 AS stay_days
        FROM stage_changes c JOIN deals d ON d.id = c.deal_id
        WHERE d.partner_id IS NOT NULL AND c.left_at IS NOT NULL
        ORDER BY c.left_at
        """
    )


# --- the SQL -------------------------------------------------------------------------------

#: Every partner's KPIs (section 3) for the window [$s, $e) / [$s_at, $e_at), one row per
#: partner of the partners table, with what the quality score and the check need; section 7's
#: customer outcomes from `clients`, `tickets` and `referrals` ({only}, {only_customer} and
#: {only_partner} limit it to partner $pid).
_KPIS = """
WITH closed AS (
    SELECT partner_id,
        count(*) FILTER (status = 'won') AS won,
        count(*) FILTER (status = 'lost') AS lost,
        sum(amount) FILTER (status = 'won') AS won_revenue,
        count(amount) FILTER (status = 'won') AS won_with_amount,
        sum(cycle) FILTER (status = 'won') AS cycle_days,
        count(*) FILTER (registered) AS registered_closed,
        count(*) FILTER (registered AND status = 'won') AS registered_won,
        count(*) FILTER (status = 'won' AND type = 'upsell') AS upsell_won,
        sum(amount) FILTER (status = 'won' AND type = 'new') AS new_revenue,
        sum(csat) FILTER (status = 'won') AS csat_sum,
        count(csat) FILTER (status = 'won') AS csat_count
    FROM partner_deals
    WHERE status IN ('won', 'lost') AND closed_on >= $s AND closed_on < $e {only}
    GROUP BY partner_id
), pipeline AS (
    SELECT partner_id, count(*) AS n, sum(amount) AS value
    FROM partner_deals
    WHERE created_on < $e AND (status = 'open' OR closed_on >= $e) {only}
    GROUP BY partner_id
), registrations AS (
    SELECT partner_id, count(*) AS n
    FROM partner_deals
    WHERE registered AND registered_day >= $s AND registered_day < $e {only}
    GROUP BY partner_id
), courses AS (
    SELECT partner_id, count(*) AS n
    FROM trainings WHERE completed_on >= $s AND completed_on < $e {only}
    GROUP BY partner_id
), answers AS (
    SELECT partner_id, count(*) AS n,
        count(*) FILTER (score >= 9) AS promoters,
        count(*) FILTER (score <= 6) AS detractors
    FROM survey_responses WHERE submitted_at >= $s_at AND submitted_at < $e_at {only}
    GROUP BY partner_id
), clients AS (
    SELECT partner_id,
        count(*) FILTER (became_customer_on < $s AND (churned_on IS NULL OR churned_on >= $s))
            AS active_at_start,
        count(*) FILTER (became_customer_on < $e AND (churned_on IS NULL OR churned_on >= $e))
            AS active_at_end,
        count(*) FILTER (became_customer_on < $s AND (churned_on IS NULL OR churned_on >= $e))
            AS retained,
        count(*) FILTER (became_customer_on >= $s AND became_customer_on < $e) AS gained,
        count(*) FILTER (churned_on >= $s AND churned_on < $e) AS lost,
        sum(mrr) FILTER (became_customer_on < $s AND (churned_on IS NULL OR churned_on >= $s))
            AS mrr_at_start,
        sum(mrr) FILTER (became_customer_on < $s AND (churned_on IS NULL OR churned_on >= $e))
            AS mrr_retained,
        sum(mrr) FILTER (became_customer_on < $e AND (churned_on IS NULL OR churned_on >= $e))
            AS mrr_at_end,
        count(*) FILTER (onboarded_on >= $s AND onboarded_on < $e) AS onboarded,
        sum(greatest(onboarded_on - became_customer_on, 0))
            FILTER (onboarded_on >= $s AND onboarded_on < $e) AS onboarding_days,
        count(*) FILTER (became_customer_on < $e AND (churned_on IS NULL OR churned_on >= $s))
            AS in_period
    FROM customers WHERE partner_id IS NOT NULL {only}
    GROUP BY partner_id
), tickets AS (
    SELECT c.partner_id, count(*) AS n
    FROM support_tickets t JOIN customers c ON c.id = t.customer_id
    WHERE t.opened_at >= $s_at AND t.opened_at < $e_at {only_customer}
    GROUP BY c.partner_id
), referrals AS (
    SELECT c.partner_id, count(*) AS n
    FROM customers gained JOIN customers c ON c.id = gained.referred_by
    WHERE gained.became_customer_on >= $s AND gained.became_customer_on < $e {only_customer}
    GROUP BY c.partner_id
), base AS (
    SELECT p.id, p.joined_on < $e AND (p.left_on IS NULL OR p.left_on >= $s) AS active,
        coalesce(c.won, 0) AS won,
        coalesce(c.won, 0) AS deal_count,
        coalesce(c.lost, 0) AS lost,
        coalesce(c.won_revenue, 0.0) AS won_revenue,
        c.won_revenue / nullif(c.won_with_amount, 0) AS avg_deal_size,
        c.won / nullif(c.won + c.lost, 0) AS close_rate,
        c.cycle_days / nullif(c.won, 0) AS sales_cycle_days,
        coalesce(pl.n, 0) AS pipeline_count,
        coalesce(pl.value, 0.0) AS pipeline_value,
        coalesce(r.n, 0) AS registered_deals,
        c.registered_won / nullif(c.registered_closed, 0) AS deal_success,
        c.upsell_won / nullif(c.won, 0) AS upsell_rate,
        coalesce(c.new_revenue, 0.0) AS net_new_revenue,
        c.csat_sum / nullif(c.csat_count, 0) AS customer_satisfaction,
        100 * ((a.promoters - a.detractors) / nullif(a.n, 0)) AS partner_nps,
        coalesce(a.n, 0) AS survey_responses,
        coalesce(t.n, 0) AS courses_completed,
        coalesce(k.active_at_end, 0) AS customers_active,
        coalesce(k.gained, 0) AS customers_gained,
        coalesce(k.lost, 0) AS customers_lost,
        (k.active_at_end - k.active_at_start) / nullif(k.active_at_start, 0) AS portfolio_growth,
        k.retained / nullif(k.active_at_start, 0) AS account_retention,
        coalesce(k.mrr_retained, 0.0) / nullif(coalesce(k.mrr_at_start, 0.0), 0.0)
            AS mrr_retention,
        coalesce(k.mrr_at_end, 0.0) AS mrr_active,
        k.onboarding_days / nullif(k.onboarded, 0) AS onboarding_days,
        coalesce(tk.n, 0) / nullif(k.in_period, 0) AS tickets_per_customer,
        coalesce(rf.n, 0) AS referrals
    FROM partners p
    LEFT JOIN closed c ON c.partner_id = p.id
    LEFT JOIN pipeline pl ON pl.partner_id = p.id
    LEFT JOIN registrations r ON r.partner_id = p.id
    LEFT JOIN courses t ON t.partner_id = p.id
    LEFT JOIN answers a ON a.partner_id = p.id
    LEFT JOIN clients k ON k.partner_id = p.id
    LEFT JOIN tickets tk ON tk.partner_id = p.id
    LEFT JOIN referrals rf ON rf.partner_id = p.id
    {only_partner}
)
SELECT *,
    CASE WHEN sales_cycle_days <> 0
        THEN pipeline_count * close_rate * avg_deal_size / sales_cycle_days END AS sales_velocity
FROM base
"""

#: Section 4 over `kpis` (the query above): each component's percentile among the active
#: partners with a value, ties sharing their mean rank (`100 * (2 * (rank - 1) + ties - 1) /
#: (2 * (n - 1))`, a lone value 100); the weighted mean and the rank. {weighted} and {total}
#: are sums in the weights' order, as `kpi.quality` adds them.
_QUALITY = """
, components AS (
    UNPIVOT (
        SELECT id, won_revenue, close_rate, avg_deal_size, sales_velocity, partner_nps,
            courses_completed::DOUBLE AS courses_completed
        FROM kpis
        WHERE active AND (SELECT bool_or(won + lost + survey_responses + courses_completed > 0)
                          FROM kpis WHERE active)
    ) ON COLUMNS(* EXCLUDE (id)) INTO NAME component VALUE value
), percentiles AS (
    SELECT id, component,
        CASE WHEN count(*) OVER everyone = 1 THEN 100.0
            ELSE (100 * (2 * (rank() OVER ordered - 1) + count(*) OVER tied - 1))
                / (2 * (count(*) OVER everyone - 1)) END AS percentile
    FROM components
    WINDOW everyone AS (PARTITION BY component),
        ordered AS (PARTITION BY component ORDER BY value),
        tied AS (PARTITION BY component, value)
), weighed AS (
    SELECT id, {weighted} AS weighted, {total} AS total
    FROM (PIVOT percentiles ON component IN ({names}) USING first(percentile) GROUP BY id)
), scores AS (
    SELECT id, least(greatest(weighted / total, 0.0), 100.0) AS quality_score
    FROM weighed WHERE total > 0
), standings AS (
    SELECT id, quality_score, rank() OVER (ORDER BY quality_score DESC) AS rank FROM scores
)
SELECT kpis.*, standings.quality_score, standings.rank,
    (SELECT count(*) FROM standings) AS ranked_partners
FROM kpis LEFT JOIN standings USING (id)
"""

_CHANNELS = """
SELECT partner_id, channel,
    count(*) FILTER (status = 'won') AS won,
    coalesce(sum(amount) FILTER (status = 'won'), 0.0) AS won_revenue,
    count(*) FILTER (status = 'won') / count(*) AS close_rate
FROM partner_deals
WHERE status IN ('won', 'lost') AND closed_on >= $s AND closed_on < $e {only}
GROUP BY partner_id, channel
"""

#: Entries into each pipeline stage and the stays in it that ended in the window; the share's
#: denominator counts every known deal's entries (direct deals' too). The stages are listed as
#: literals ({listed}): a semi-join with the VALUES list took 15% longer.
_STAGES = """
WITH pipeline(stage) AS (VALUES {stages}), entered AS (
    SELECT partner_id, stage, count(*) AS n
    FROM changes
    WHERE entered_at >= $s_at AND entered_at < $e_at AND stage IN ({listed})
    GROUP BY partner_id, stage
), everyone AS (
    SELECT stage, sum(n) AS n FROM entered GROUP BY stage
), stays AS (
    SELECT partner_id, stage, avg(stay_days) AS avg_days
    FROM stays
    WHERE left_at >= $s_at AND left_at < $e_at AND stage IN ({listed}) {only}
    GROUP BY partner_id, stage
)
SELECT p.id, pipeline.stage, coalesce(e.n, 0) AS entered,
    coalesce(e.n, 0) / everyone.n AS share, s.avg_days
FROM partners p CROSS JOIN pipeline
LEFT JOIN entered e ON e.partner_id = p.id AND e.stage = pipeline.stage
LEFT JOIN everyone ON everyone.stage = pipeline.stage
LEFT JOIN stays s ON s.partner_id = p.id AND s.stage = pipeline.stage
WHERE p.id IS NOT NULL {only_partner}
"""

#: The KPIs that are counts (ints in the engine's cards; the rest are floats or None).
_INTS = frozenset(
    {
        "deal_count",
        "pipeline_count",
        "registered_deals",
        "survey_responses",
        "courses_completed",
        "customers_active",
        "customers_gained",
        "customers_lost",
        "referrals",
    }
)


def _sum_in_order(terms: Sequence[str]) -> str:
    expression = "0.0"
    for term in terms:
        expression = f"({expression} + {term})"
    return expression


def quality_sql(weights: Mapping[str, float]) -> str:
    """Every partner's KPIs with the quality score and rank, for these weights."""
    weighted = _sum_in_order(
        [f'coalesce({float(w)!r} * "{name}", 0.0)' for name, w in weights.items()]
    )
    total = _sum_in_order(
        [
            f'CASE WHEN "{name}" IS NULL THEN 0.0 ELSE {float(w)!r} END'
            for name, w in weights.items()
        ]
    )
    names = ", ".join(_quoted(list(weights)))
    return (
        "WITH kpis AS ("
        + kpis_sql()
        + ")"
        + _QUALITY.format(weighted=weighted, total=total, names=names)
    )


def kpis_sql(one_partner: bool = False) -> str:
    """Every partner's KPIs (or partner $pid's), without the quality score."""
    if one_partner:
        return _KPIS.format(
            only="AND partner_id = $pid",
            only_customer="AND c.partner_id = $pid",
            only_partner="WHERE p.id = $pid",
        )
    return _KPIS.format(only="", only_customer="", only_partner="")


def _quoted(values: Sequence[str]) -> list[str]:
    return ["'" + value.replace("'", "''") + "'" for value in values]


def _params(window: Window) -> dict[str, Any]:
    return {"s": window.start, "e": window.end, "s_at": window.start_at, "e_at": window.end_at}


def _run(
    connection: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]
) -> duckdb.DuckDBPyConnection:
    """Executes `sql` with the parameters it names (DuckDB refuses unused ones)."""
    named = set(re.findall(r"\$(\w+)", sql))
    return connection.execute(sql, {k: v for k, v in params.items() if k in named})


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _kpis(row: Mapping[str, Any]) -> dict[str, Any]:
    values = {}
    for key in KPI_KEYS:
        value = row[key]
        if value is not None:
            value = int(value) if key in _INTS else float(value)
        values[key] = value
    return values


class Queries:
    """The SQL for one deployment's pipeline and weights, built once."""

    def __init__(self, stages: Sequence[str], weights: Mapping[str, float]) -> None:
        self.stages = list(stages)
        self.current = quality_sql(weights)
        self.previous = {only: kpis_sql(only) for only in (False, True)}
        pipeline = ", ".join(f"({value})" for value in _quoted(self.stages)) or "(NULL)"
        self.channels = {
            only: _CHANNELS.format(only="AND partner_id = $pid" if only else "")
            for only in (False, True)
        }
        self.stage_table = {
            only: _STAGES.format(
                stages=pipeline,
                listed=", ".join(_quoted(self.stages)) or "NULL",
                only="AND partner_id = $pid" if only else "",
                only_partner="AND p.id = $pid" if only else "",
            )
            for only in (False, True)
        }


def _cards(
    connection: duckdb.DuckDBPyConnection,
    queries: Queries,
    window: Window,
    previous: Window,
    partner_id: str | None,
) -> dict[str, dict[str, Any]]:
    params = _params(window)
    only = {"pid": partner_id} if partner_id is not None else {}
    current = _rows(_run(connection, queries.current, params))
    if partner_id is not None:
        current = [row for row in current if row["id"] == partner_id]
    before = _rows(
        _run(connection, queries.previous[partner_id is not None], _params(previous) | only)
    )
    channels = _run(connection, queries.channels[partner_id is not None], params | only).fetchall()
    stages = (
        _run(connection, queries.stage_table[partner_id is not None], params | only).fetchall()
        if queries.stages
        else []
    )
    cards: dict[str, dict[str, Any]] = {}
    for row in current:
        cards[row["id"]] = {
            "kpis": _kpis(row),
            "channels": {
                name: {"deal_count": 0, "won_revenue": 0.0, "close_rate": None}
                for name in (c.value for c in Channel)
            },
            "stages": {
                stage: {"stage": stage, "entered": 0, "share": None, "avg_days": None}
                for stage in queries.stages
            },
            "quality_score": row["quality_score"],
            "rank": row["rank"],
            "ranked_partners": row["ranked_partners"],
        }
    for row in before:
        cards[row["id"]]["previous"] = _kpis(row)
    for pid, channel, won, revenue, rate in channels:
        if pid in cards:
            cards[pid]["channels"][channel] = {
                "deal_count": won,
                "won_revenue": revenue,
                "close_rate": rate,
            }
    for pid, stage, entered, share, avg_days in stages:
        if pid in cards:
            cards[pid]["stages"][stage] = {
                "stage": stage,
                "entered": entered,
                "share": share,
                "avg_days": avg_days,
            }
    for card in cards.values():
        card["stages"] = list(card["stages"].values())
    return cards


def all_partners(
    connection: duckdb.DuckDBPyConnection, queries: Queries, window: Window, previous: Window
) -> dict[str, dict[str, Any]]:
    """Every partner's card for the window (the previous window's KPIs in `previous`)."""
    return _cards(connection, queries, window, previous, None)


def one_partner(
    connection: duckdb.DuckDBPyConnection,
    queries: Queries,
    partner_id: str,
    window: Window,
    previous: Window,
) -> dict[str, Any]:
    """One partner's card: every partner's KPIs (the quality score ranks them all), the
    channels, stages and previous period for that partner only."""
    return _cards(connection, queries, window, previous, partner_id)[partner_id]

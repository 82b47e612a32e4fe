"""The pandas baseline: the same per-partner KPIs (kpi-spec.md sections 3 and 4) computed the plain
way, from DataFrames read once out of the bench's SQLite file with `pandas.read_sql`.

It is what an analyst would write: read the tables, join the stage history to its deals, then
filter and `groupby` per period. `load` reads (timed apart), `prepare` does the period-independent
work once (dates to datetime64, the stage history joined to its deal's partner, cycle and stay
lengths), and `partner_kpis` computes every partner's KPIs for one period: the closed-deal
aggregates, channels, pipeline, registrations, trainings, NPS, stage entries/shares/average days,
and (for the current period) the percentiles (`rank(method="average")`) and weighted quality
score with its rank. `scorecards` is the engine's `all_partners`: the period with stages and the
quality score, and the previous period's KPIs. `one_scorecard` is one partner's card done the
natural way: the period for everyone (the quality score ranks every partner), the previous period
and the stages for that partner only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from settings.kpi import DEFAULT_WEIGHTS
from settings.periods import Period, previous_period

CHANNELS = ("paid", "earned", "owned", "other")
COMPONENTS = tuple(DEFAULT_WEIGHTS)


@dataclass
class Frames:
    partners: pd.DataFrame
    deals: pd.DataFrame
    changes: pd.DataFrame
    trainings: pd.DataFrame
    surveys: pd.DataFrame


def load(db_path: str) -> Frames:
    """Reads the needed columns of every table once (dates parsed while reading)."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    day = {"format": "%Y-%m-%d"}
    stamp = {"format": "ISO8601"}
    try:
        return Frames(
            partners=pd.read_sql(
                "SELECT id, joined_on, left_on FROM partners",
                connection,
                parse_dates={"joined_on": day, "left_on": day},
            ),
            deals=pd.read_sql(
                "SELECT id, partner_id, status, amount, created_on, closed_on, type, channel,"
                " registered, registered_on, csat FROM deals",
                connection,
                parse_dates={"created_on": day, "closed_on": day, "registered_on": day},
            ),
            changes=pd.read_sql(
                "SELECT deal_id, stage, entered_at, left_at FROM stage_changes",
                connection,
                parse_dates={"entered_at": stamp, "left_at": stamp},
            ),
            trainings=pd.read_sql(
                "SELECT partner_id, completed_on FROM trainings",
                connection,
                parse_dates={"completed_on": day},
            ),
            surveys=pd.read_sql(
                "SELECT partner_id, score, submitted_at FROM survey_responses",
                connection,
                parse_dates={"submitted_at": stamp},
            ),
        )
    finally:
        connection.close()


@dataclass
class Prepared:
    partners: pd.DataFrame  # index: id; joined_on, left_on
    deals: pd.DataFrame  # partner deals only, with cycle and registration date
    changes: pd.DataFrame  # changes of known deals, with the deal's partner (NaN: direct)
    trainings: pd.DataFrame
    surveys: pd.DataFrame


def prepare(frames: Frames) -> Prepared:
    """The period-independent work, done once per load."""
    deals = frames.deals
    deals["registered"] = deals["registered"].astype(bool)
    deals["cycle"] = (deals["closed_on"] - deals["created_on"]).dt.days.clip(lower=0)
    deals["registered_day"] = deals["registered_on"].fillna(deals["created_on"])
    changes = frames.changes.merge(
        deals[["id", "partner_id"]], left_on="deal_id", right_on="id", how="inner"
    )
    changes["stay_days"] = (changes["left_at"] - changes["entered_at"]).dt.total_seconds() / 86400
    partnered = deals[deals["partner_id"].notna()]
    return Prepared(
        partners=frames.partners.set_index("id"),
        deals=partnered,
        changes=changes[["partner_id", "stage", "entered_at", "left_at", "stay_days"]],
        trainings=frames.trainings,
        surveys=frames.surveys,
    )


def _ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(day)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator).where(denominator != 0)


def _closed(closed: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    won = closed["status"] == "won"
    frame = pd.DataFrame(
        {
            **{key: closed[key] for key in keys},
            "won": won,
            "lost": ~won,
            "won_amount": closed["amount"].where(won),
            "won_cycle": closed["cycle"].where(won),
            "registered_closed": closed["registered"],
            "registered_won": closed["registered"] & won,
            "upsell_won": won & (closed["type"] == "upsell"),
            "new_amount": closed["amount"].where(won & (closed["type"] == "new")),
            "won_csat": closed["csat"].where(won),
        }
    )
    return frame.groupby(keys, sort=False).agg(
        deal_count=("won", "sum"),
        lost=("lost", "sum"),
        won_revenue=("won_amount", "sum"),
        won_with_amount=("won_amount", "count"),
        cycle_sum=("won_cycle", "sum"),
        registered_closed=("registered_closed", "sum"),
        registered_won=("registered_won", "sum"),
        upsell_won=("upsell_won", "sum"),
        net_new_revenue=("new_amount", "sum"),
        csat_sum=("won_csat", "sum"),
        csat_count=("won_csat", "count"),
    )


def partner_kpis(
    data: Prepared,
    period: Period,
    partner_ids: list[str] | None = None,
    stages: list[str] | None = None,
    quality: bool = True,
) -> dict[str, Any]:
    """Every partner's KPIs for `period` (index: every partner id, known or named by a deal);
    `partner_ids` limits the rows; `stages` adds the stage table; `quality` the score and rank."""
    s, e = _ts(period.start), _ts(period.end)
    deals = data.deals
    if partner_ids is not None:
        deals = deals[deals["partner_id"].isin(partner_ids)]
    closed_on = deals["closed_on"]
    closed = deals[(closed_on >= s) & (closed_on < e) & deals["status"].isin(("won", "lost"))]
    by_partner = _closed(closed, ["partner_id"])
    by_channel = _closed(closed, ["partner_id", "channel"])

    open_at_end = deals[
        (deals["created_on"] < e) & ((deals["status"] == "open") | (closed_on >= e))
    ]
    pipeline = open_at_end.groupby("partner_id", sort=False)["amount"].agg(["size", "sum"])
    registered_day = deals["registered_day"]
    registered = (
        deals[deals["registered"] & (registered_day >= s) & (registered_day < e)]
        .groupby("partner_id", sort=False)
        .size()
    )
    trainings = data.trainings
    completed = trainings["completed_on"]
    courses = trainings[(completed >= s) & (completed < e)].groupby("partner_id").size()
    surveys = data.surveys
    submitted = surveys["submitted_at"]
    answered = surveys[(submitted >= s) & (submitted < e)]
    nps = (
        pd.DataFrame(
            {
                "partner_id": answered["partner_id"],
                "n": 1,
                "net": (answered["score"] >= 9).astype(int) - (answered["score"] <= 6).astype(int),
            }
        )
        .groupby("partner_id", sort=False)[["n", "net"]]
        .sum()
    )

    index = data.partners.index
    for extra in (by_partner.index, pipeline.index, courses.index, nps.index):
        index = index.union(extra)
    if partner_ids is not None:
        index = pd.Index(partner_ids)
    kpis = by_partner.reindex(index, fill_value=0).astype(float)
    kpis["pipeline_count"] = pipeline["size"].reindex(index, fill_value=0)
    kpis["pipeline_value"] = pipeline["sum"].reindex(index, fill_value=0.0)
    kpis["registered_deals"] = registered.reindex(index, fill_value=0)
    kpis["courses_completed"] = courses.reindex(index, fill_value=0)
    responses = nps["n"].reindex(index, fill_value=0)
    kpis["survey_responses"] = responses
    kpis["partner_nps"] = 100 * _ratio(nps["net"].reindex(index, fill_value=0), responses)
    kpis["avg_deal_size"] = _ratio(kpis["won_revenue"], kpis["won_with_amount"])
    kpis["close_rate"] = _ratio(kpis["deal_count"], kpis["deal_count"] + kpis["lost"])
    kpis["sales_cycle_days"] = _ratio(kpis["cycle_sum"], kpis["deal_count"])
    velocity = (
        kpis["pipeline_count"]
        * kpis["close_rate"]
        * kpis["avg_deal_size"]
        / kpis["sales_cycle_days"]
    )
    kpis["sales_velocity"] = velocity.where(kpis["sales_cycle_days"] != 0)
    kpis["deal_success"] = _ratio(kpis["registered_won"], kpis["registered_closed"])
    kpis["upsell_rate"] = _ratio(kpis["upsell_won"], kpis["deal_count"])
    kpis["customer_satisfaction"] = _ratio(kpis["csat_sum"], kpis["csat_count"])

    channel_kpis = by_channel[["deal_count", "won_revenue", "lost"]].copy()
    channel_kpis["close_rate"] = _ratio(
        channel_kpis["deal_count"], channel_kpis["deal_count"] + channel_kpis["lost"]
    )
    result: dict[str, Any] = {"kpis": kpis, "channels": channel_kpis}
    if stages is not None:
        result["stages"] = _stages(data, period, partner_ids, stages)
    if quality:
        result["quality"] = _quality(data.partners, kpis, period)
    return result


def _stages(
    data: Prepared, period: Period, partner_ids: list[str] | None, pipeline: list[str]
) -> pd.DataFrame:
    s, e = _ts(period.start), _ts(period.end)
    changes = data.changes
    entered = changes[(changes["entered_at"] >= s) & (changes["entered_at"] < e)]
    everyone = entered.groupby("stage").size()  # every known deal, direct ones too
    left = changes[(changes["left_at"] >= s) & (changes["left_at"] < e)]
    if partner_ids is not None:
        entered = entered[entered["partner_id"].isin(partner_ids)]
        left = left[left["partner_id"].isin(partner_ids)]
    table = pd.DataFrame(
        {
            "entered": entered.groupby(["partner_id", "stage"]).size(),
            "avg_days": left.groupby(["partner_id", "stage"])["stay_days"].mean(),
        }
    )
    table = table[table.index.get_level_values("stage").isin(pipeline)]
    table["entered"] = table["entered"].fillna(0)
    table["share"] = table["entered"] / everyone.reindex(
        table.index.get_level_values("stage")
    ).to_numpy(dtype=float)
    return table


def _quality(partners: pd.DataFrame, kpis: pd.DataFrame, period: Period) -> pd.DataFrame:
    s, e = _ts(period.start), _ts(period.end)
    active = partners.index[
        (partners["joined_on"] < e) & (partners["left_on"].isna() | (partners["left_on"] >= s))
    ]
    values = kpis.loc[active, list(COMPONENTS)]
    ranks = values.rank(method="average")
    counts = values.notna().sum()
    percentiles = 100 * (ranks - 1) / (counts - 1).replace(0, np.nan)
    for name in COMPONENTS:
        if counts[name] == 1:
            percentiles.loc[values[name].notna(), name] = 100.0
    weights = pd.Series(DEFAULT_WEIGHTS)
    weighted = (percentiles * weights).sum(axis=1, min_count=1)
    total = percentiles.notna().mul(weights).sum(axis=1)
    score = (weighted / total).where(total > 0)
    rank = score.rank(method="min", ascending=False)
    return pd.DataFrame({"quality_score": score, "rank": rank})


def scorecards(data: Prepared, period: Period, stages: list[str]) -> dict[str, Any]:
    """Every partner's card for one period: the period with stages and quality, and the
    previous period's KPIs and channels (what the engine's `all_partners` computes)."""
    current = partner_kpis(data, period, stages=stages)
    previous = partner_kpis(data, previous_period(period), quality=False)
    return {"current": current, "previous": previous}


def one_scorecard(
    data: Prepared, partner_id: str, period: Period, stages: list[str]
) -> dict[str, Any]:
    """One partner's card: every partner's current KPIs (the quality score ranks them all),
    the previous period and the stages for that partner only."""
    current = partner_kpis(data, period, quality=True)
    mine = partner_kpis(data, period, partner_ids=[partner_id], stages=stages, quality=False)
    previous = partner_kpis(data, previous_period(period), partner_ids=[partner_id], quality=False)
    return {
        "kpis": current["kpis"].loc[partner_id],
        "quality": current["quality"].loc[partner_id]
        if partner_id in current["quality"].index
        else None,
        "channels": mine["channels"],
        "stages": mine["stages"],
        "previous": previous["kpis"].loc[partner_id],
    }


def check_values(cards: dict[str, Any], partner_ids: list[str]) -> dict[str, dict[str, Any]]:
    """deal_count, won_revenue, close_rate and quality_score of these partners (None: n/a)."""
    kpis = cards["current"]["kpis"]
    quality = cards["current"]["quality"]

    def clean(value: Any) -> Any:
        return None if value is None or pd.isna(value) else float(value)

    result = {}
    for pid in partner_ids:
        score = quality["quality_score"].get(pid) if pid in quality.index else None
        row = kpis.loc[pid] if pid in kpis.index else None
        result[pid] = {
            "deal_count": clean(row["deal_count"]) if row is not None else 0.0,
            "won_revenue": clean(row["won_revenue"]) if row is not None else 0.0,
            "close_rate": clean(row["close_rate"]) if row is not None else None,
            "quality_score": clean(score),
        }
    return result

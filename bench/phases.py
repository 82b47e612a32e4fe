"""The benchmark's measured phases, each run in a fresh child process by `bench.kpi_bench` so that
its peak memory (VmHWM, `bench.harness.peak_mb`) is its own: the engine timings, the pandas
baseline, and the SQL profile (every statement the engine issues, timed alone and explained).

Each phase takes plain arguments and returns plain data (it crosses a process boundary).
"""

from __future__ import annotations

import random
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.generate import AS_OF, FIRST_DAY, PIPELINE
from bench.harness import peak_mb
from bot.answers import Answers
from bot.server import settle_heap
from kpi.aggregates import Window
from kpi.engine import KpiEngine
from kpi.store import open_store
from settings.app import AppConfig
from settings.kpi import KpiConfig, TierConfig
from settings.periods import Period, parse_period, previous_period

CHECK_KEYS = ("deal_count", "won_revenue", "close_rate", "quality_score")
PERIOD_KINDS = (
    "last-30d",
    "last-90d",
    "last-365d",
    "this-quarter",
    "last-quarter",
    "quarter",
    "range",
)


def code_version() -> str:
    """The commit the engine was measured at, and whether kpi/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "kpi"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (kpi/ has uncommitted changes)" if dirty else "")


def _day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def random_period(rng: random.Random) -> tuple[str, Period]:
    """A period of a random kind at a random as-of date within the data (the as-of date at least a
    year after the first day, so that the period and its previous one mostly hold data)."""
    kind = PERIOD_KINDS[rng.randrange(len(PERIOD_KINDS))]
    as_of = _day(rng, FIRST_DAY + timedelta(days=365), AS_OF)
    if kind == "quarter":
        day = _day(rng, FIRST_DAY, AS_OF)
        return kind, parse_period(f"{day.year}-Q{(day.month - 1) // 3 + 1}", as_of)
    if kind == "range":
        first = _day(rng, FIRST_DAY, AS_OF - timedelta(days=7))
        last = min(first + timedelta(days=rng.randint(7, 180) - 1), AS_OF)
        return kind, parse_period(f"{first}..{last}", as_of)
    return kind, parse_period(kind, as_of)


#: The bench deployment's app.yaml: the generator's pipeline, and tiers, so that a Slack answer
#: also works out the lever to the next tier.
BENCH_APP = AppConfig(
    stages=list(PIPELINE),
    kpi=KpiConfig(
        tiers=[
            TierConfig(name="Registered", min_score=0),
            TierConfig(name="Silver", min_score=60),
            TierConfig(name="Gold", min_score=80),
        ]
    ),
)


def sample_pairs(partner_ids: list[str], seed: int, count: int) -> list[tuple[str, str, Period]]:
    """The (partner, period kind, period) pairs of the scorecard timings: the same for every
    phase given the same sorted partner ids and seed."""
    rng = random.Random(seed * 7919 + 1)
    return [(rng.choice(partner_ids), *random_period(rng)) for _ in range(count)]


#: The parts of the engine's card the DuckDB baseline computes too (all but names and dates).
CARD_KEYS = ("kpis", "previous", "channels", "stages", "quality_score", "rank", "ranked_partners")


def comparable(card: dict[str, Any]) -> dict[str, Any]:
    """The part of an engine card the DuckDB baseline computes: the KPIs of sections 3 and 7
    (this period's and the previous one's), channels, stages, quality score and rank; not the
    training line of section 8."""
    return {key: card[key] for key in CARD_KEYS}


def engine_for(db: str) -> KpiEngine:
    return KpiEngine(open_store(f"sqlite:///{db}"), BENCH_APP.kpi_settings)


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def _repeated(action: Callable[[], Any], repeats: int) -> tuple[list[float], list[float], Any]:
    """`repeats` runs of `action`: their wall seconds, their CPU seconds (every thread of this
    process: what the work costs whatever else runs on the machine) and the last value."""
    walls, cpus, value = [], [], None
    for _ in range(repeats):
        cpu = time.process_time()
        wall, value = _timed(action)
        cpus.append(time.process_time() - cpu)
        walls.append(wall)
    return walls, cpus, value


def engine_phase(
    db: str, seed: int, samples: int, warmup: int, period_text: str, repeats: int
) -> dict[str, Any]:
    """(1) one partner's scorecard over random (partner, period) pairs, (2) every partner's
    scorecard for one period, (3) the program; with the values the pandas check compares."""
    rss_start = peak_mb()
    engine = engine_for(db)
    settle_heap()  # as `partner-kpi serve` does once started
    partner_ids = sorted(p.id for p in engine.partners())
    pairs = sample_pairs(partner_ids, seed, warmup + samples)
    for pid, _kind, period in pairs[:warmup]:
        engine.partner(pid, period, as_of=AS_OF)
    scorecards = []
    goal_counts = []
    for pid, kind, period in pairs[warmup:]:
        cpu = time.process_time()
        seconds, card = _timed(partial(engine.partner, pid, period, as_of=AS_OF))
        cpu_ms = (time.process_time() - cpu) * 1000  # what the card costs whatever else runs
        goal_counts.append(len(card["goals"]))
        scorecards.append(
            {
                "partner": pid,
                "kind": kind,
                "period": period.name,
                "ms": seconds * 1000,
                "cpu_ms": cpu_ms,
            }
        )
    # What `/partner-kpi NAME` computes once the name is found: the engine's scorecard with the
    # tier lever, the data-trust counts and the direct baseline, rendered to Block Kit.
    answers = Answers(engine.store, BENCH_APP, lambda: AS_OF)
    answer_ms = [
        _timed(partial(answers.scorecard, pid, period))[0] * 1000
        for pid, _kind, period in pairs[warmup:]
    ]

    period = parse_period(period_text, AS_OF)
    program_seconds = []
    # One untimed run first, as the scorecards had theirs (it reads pages no scorecard did);
    # its time is kept as the cold figure.
    cold_seconds, cards = _timed(lambda: engine.all_partners(period, as_of=AS_OF))
    all_seconds, all_cpu, cards = _repeated(
        lambda: engine.all_partners(period, as_of=AS_OF), repeats
    )
    for _ in range(repeats):
        seconds, _program = _timed(lambda: engine.program(period, as_of=AS_OF))
        program_seconds.append(seconds)
    check = {
        pid: {
            "deal_count": card["kpis"]["deal_count"],
            "won_revenue": card["kpis"]["won_revenue"],
            "close_rate": card["kpis"]["close_rate"],
            "quality_score": card["quality_score"],
        }
        for pid, card in cards.items()
    }
    engine.store.engine.dispose()
    return {
        "scorecards": scorecards,
        "goals_per_scorecard": sorted(set(goal_counts)),
        "answer_ms": answer_ms,
        "all_partners_seconds": all_seconds,
        "all_partners_cpu_seconds": all_cpu,
        "all_partners_cold_seconds": cold_seconds,
        "program_seconds": program_seconds,
        "check": check,
        "rss_after_imports_mb": rss_start,
        "peak_rss_mb": peak_mb(),  # before the check's copies of the cards below
        "cards": {pid: comparable(card) for pid, card in cards.items()},
        "code": code_version(),
    }


def pandas_phase(db: str, period_text: str, partner_id: str, repeats: int) -> dict[str, Any]:
    """The pandas baseline: read once, prepare once, then every partner's KPIs for one period,
    and one partner's scorecard."""
    from bench import pandas_baseline as pb  # pandas is imported in this child only

    rss_start = peak_mb()
    period = parse_period(period_text, AS_OF)
    stages = list(PIPELINE)
    load_seconds, frames = _timed(lambda: pb.load(db))
    rows = {
        "deals": len(frames.deals),
        "stage_changes": len(frames.changes),
        "partners": len(frames.partners),
    }
    started = time.perf_counter()
    data = pb.prepare(frames)
    prepare_seconds = time.perf_counter() - started
    del frames  # what stays in memory is the prepared data, as in a long-running process
    compute_seconds, compute_cpu, cards = _repeated(
        lambda: pb.scorecards(data, period, stages), repeats
    )
    one_seconds = []
    for _ in range(repeats):
        seconds, _one = _timed(lambda: pb.one_scorecard(data, partner_id, period, stages))
        one_seconds.append(seconds)
    partner_ids = list(data.partners.index)
    return {
        "rows": rows,
        "load_seconds": load_seconds,
        "prepare_seconds": prepare_seconds,
        "compute_seconds": compute_seconds,
        "compute_cpu_seconds": compute_cpu,
        "one_scorecard_seconds": one_seconds,
        "check": pb.check_values(cards, partner_ids),
        "rss_after_imports_mb": rss_start,
        "peak_rss_mb": peak_mb(),
        "code": code_version(),
    }


def duckdb_phase(
    db: str,
    seed: int,
    samples: int,
    warmup: int,
    period_text: str,
    repeats: int,
    threads: int | None = None,
) -> dict[str, Any]:
    """The DuckDB baseline: copy the store into memory once, prepare once, then one partner's
    card over the engine's random (partner, period) pairs and every partner's cards for one
    period (after an untimed first run), with the cards the check compares."""
    from bench import duckdb_baseline as ddb  # duckdb is imported in this child only

    rss_start = peak_mb()
    settings = BENCH_APP.kpi_settings

    def windows(period: Period) -> tuple[Window, Window]:
        return Window.of(period, settings.tz), Window.of(previous_period(period), settings.tz)

    load_seconds, connection = _timed(lambda: ddb.load(db, threads))
    prepare_seconds, _ = _timed(lambda: ddb.prepare(connection))
    rows = {
        name: connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
        for name in ("partners", "deals", "stage_changes")
    }
    queries = ddb.Queries(BENCH_APP.stages or [], settings.weights)
    partner_ids = sorted(row[0] for row in connection.execute("SELECT id FROM partners").fetchall())
    pairs = sample_pairs(partner_ids, seed, warmup + samples)
    for pid, _kind, period in pairs[:warmup]:
        ddb.one_partner(connection, queries, pid, *windows(period))
    scorecards = []
    for pid, kind, period in pairs[warmup:]:
        seconds, _card = _timed(
            partial(ddb.one_partner, connection, queries, pid, *windows(period))
        )
        scorecards.append(
            {"partner": pid, "kind": kind, "period": period.name, "ms": seconds * 1000}
        )
    period = parse_period(period_text, AS_OF)
    every = partial(ddb.all_partners, connection, queries, *windows(period))
    cold_seconds, cards = _timed(every)
    all_seconds, all_cpu, cards = _repeated(every, repeats)
    used = connection.execute("SELECT current_setting('threads')").fetchone()
    connection.close()
    return {
        "version": ddb.duckdb.__version__,
        "threads": used[0] if used else None,
        "rows": rows,
        "load_seconds": load_seconds,
        "prepare_seconds": prepare_seconds,
        "scorecards": scorecards,
        "all_partners_seconds": all_seconds,
        "all_partners_cpu_seconds": all_cpu,
        "all_partners_cold_seconds": cold_seconds,
        "cards": cards,
        "rss_after_imports_mb": rss_start,
        "peak_rss_mb": peak_mb(),
        "code": code_version(),
    }


# --- the SQL profile ------------------------------------------------------------------------


def capture(engine: KpiEngine, call: Callable[[], Any]) -> tuple[float, list[tuple[str, Any]]]:
    """Runs `call` once, timed, and returns every SQL statement (with its parameters) that it
    sent through the store's engine, in order."""
    captured: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(engine.store.engine, "before_cursor_execute", listen)
    try:
        seconds, _ = _timed(call)
    finally:
        event.remove(engine.store.engine, "before_cursor_execute", listen)
    return seconds, captured


def time_statement(connection: Any, statement: str, parameters: Any) -> tuple[float, int]:
    """Median milliseconds of 3 runs after a warm one, and the row count."""
    connection.exec_driver_sql(statement, parameters).fetchall()
    times, rows = [], 0
    for _ in range(3):
        started = time.perf_counter()
        rows = len(connection.exec_driver_sql(statement, parameters).fetchall())
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, rows


PERIOD_TOTALS = "rollups: period totals"  # closed deals, pipeline, registrations, courses


def classify(statement: str) -> str:
    """Which of the engine's queries a SQL statement is (kpi/aggregates.py, kpi/engine.py)."""
    sql = " ".join(statement.split())
    if "original_amount" in sql:
        return "trust (scorecard() only)"
    if "FROM sync_runs" in sql:
        return "data_as_of (sync_runs)"
    if "FROM partners" in sql:
        return "partners"
    if "kpi_dirty_" in sql:
        return "rollups: stale marks"
    if "kpi_partner_days" in sql:
        return PERIOD_TOTALS
    if "kpi_stage_hours" in sql:
        return "rollups: stage entries of all deals"
    if "stage_changes" in sql:
        return "_stage_counts (entries and stays per partner and stage)"
    if "survey_responses" in sql:
        return "_surveys"
    if "won_with_amount" in sql:
        return "_closed by channel"
    return sql[:60]


def _plan(connection: Any, statement: str, parameters: Any) -> list[str]:
    rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _unused, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


def profile_phase(db: str, scenarios: list[tuple[str, str, str | None]]) -> list[dict[str, Any]]:
    """For each (name, period, partner or None: every partner) scenario: the engine call's time
    (`partner`, or `scorecard` when the name is "scorecard()", or `all_partners`),
    then every distinct statement it issued, re-run alone (median of 3 warm runs), with its row
    count and its EXPLAIN QUERY PLAN."""
    engine = engine_for(db)
    results = []
    for name, period_text, partner_id in scenarios:
        period = parse_period(period_text, AS_OF)

        def call(pid: str | None = partner_id, period: Period = period, how: str = name) -> Any:
            if pid is None:
                return engine.all_partners(period)
            if how == "scorecard()":  # the bot's card: partner() + tier, trust counts, baseline
                return engine.scorecard(pid, period)
            return engine.partner(pid, period)

        call()  # warm
        seconds, captured = capture(engine, call)
        distinct: dict[tuple[str, str], dict[str, Any]] = {}
        occurrences: dict[str, int] = {}
        for statement, parameters in captured:
            if statement.lstrip().upper().startswith("PRAGMA"):
                continue  # the engine's page-cache settings (kpi.page_cache): no reads to time
            key = (statement, repr(parameters))
            if key in distinct:
                distinct[key]["calls"] += 1
                continue
            label = classify(statement)
            occurrences[label] = occurrences.get(label, 0) + 1
            if label in (PERIOD_TOTALS, "_surveys"):
                label += " (period)" if occurrences[label] == 1 else " (previous)"
            distinct[key] = {
                "label": label,
                "calls": 1,
                "statement": " ".join(statement.split()),
                "parameters": parameters,
            }
        with engine.store.engine.connect() as connection:
            for (statement, _), item in distinct.items():
                parameters = item["parameters"]
                item["ms"], item["rows"] = time_statement(connection, statement, parameters)
                item["plan"] = _plan(connection, statement, parameters)
                item["parameters"] = [str(p) for p in parameters]
        results.append(
            {
                "name": name,
                "period": period.name,
                "partner": partner_id,
                "ms": seconds * 1000,
                "code": code_version(),
                "statements": sorted(
                    distinct.values(), key=lambda item: -item["ms"] * item["calls"]
                ),
            }
        )
    engine.store.engine.dispose()
    return results

"""The App Home's latency against Slack's 3-second budget: from the signed `app_home_opened`
event reaching the real Bolt app (behind its HTTP server) to the loopback Slack receiving the
valid `views.publish`, on the bench program (2,000 partners, 1,000,000 deals by default). Run by
hand:

    python3 -m bench.home_bench [--partners N] [--deals N] [--db PATH] [--samples N] [--json PATH]

Three cases, each timed `--samples` times (p50, p95, max in ms):

- cold: the first opening after a sync (a new data version), so nothing is cached: the program,
  every partner's card, the leaders, the at-risk list and the owners are computed; the four
  periods of the select take turns;
- warm: another manager opens the tab at the same data version (the program's numbers are
  shared; the viewer's own view is built);
- cached: the same manager again within the cache's 10 seconds;
- partner: an external user's Home (their own partner's scorecard).

The deployment is the KPI bench's (its pipeline and tiers). The bench file is
`bench.generate`'s (built once, about 4 minutes); the runs it adds to
`sync_runs` (to move the data version) change no KPI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.generate import BenchSpec, ensure_database
from bench.kpi_bench import DEFAULT_DB, machine, percentile
from bench.phases import BENCH_APP
from bot.home import HOME_PERIODS
from bot.server import settle_heap
from kpi.store import Store, open_store
from settings.app import AppConfig
from tests.fake_slack import FakeSlack, app_home_opened_event
from tests.slack_bot import Bot, start_bot

BUDGET_MS = 3000.0
MANAGERS = 25  # the generator's owners: manager0..24@example.com, 80 partners each


def new_version(store: Store) -> None:
    run = store.start_sync("bench-home", full=False)
    store.finish_sync(run, "ok", {})


def open_home(bot: Bot, fake: FakeSlack, user: str, period: str) -> float:
    """Milliseconds from the event's delivery to the accepted views.publish."""
    before = len(fake.calls_to("views.publish"))
    view = {"private_metadata": json.dumps({"period": period}), "type": "home", "blocks": []}
    started = time.perf_counter()
    bot.event(app_home_opened_event(user, view=view))
    call = fake.wait_for(
        lambda: (calls := fake.calls_to("views.publish"))[before:] and calls[-1],
        timeout=60,
        description="views.publish",
    )
    elapsed = 1000 * (time.perf_counter() - started)
    if not call.ok:
        raise RuntimeError(f"Slack refused the view: {call.response}")
    blocks = call.body["view"]["blocks"]
    if len(blocks) > 100:
        raise RuntimeError(f"{len(blocks)} blocks")
    return elapsed


def timed(samples: int, one: Callable[[int], float]) -> dict[str, Any]:
    values = [one(n) for n in range(samples)]
    return {
        "samples": samples,
        "p50_ms": statistics.median(values),
        "p95_ms": percentile(values, 95),
        "max_ms": max(values),
    }


def measure(bot: Bot, fake: FakeSlack, store: Store, samples: int) -> dict[str, Any]:
    """The four cases against a served bot (see the module's docstring)."""
    new_version(store)
    open_home(bot, fake, "M0", "last-90d")  # warm-up: imports, templates, SQLite's cache
    settle_heap()

    def cold(n: int) -> float:
        new_version(store)
        return open_home(bot, fake, f"M{n % MANAGERS}", HOME_PERIODS[n % 4])

    def warm(n: int) -> float:
        return open_home(bot, fake, f"M{1 + n % (MANAGERS - 1)}", "last-90d")

    def cached(n: int) -> float:
        return open_home(bot, fake, "M1", "last-90d")

    def partner(n: int) -> float:
        return open_home(bot, fake, "UX", HOME_PERIODS[n % 4])

    results = {"cold": timed(samples, cold)}
    new_version(store)
    open_home(bot, fake, "M0", "last-90d")  # the shared numbers of this version
    results["warm"] = timed(min(samples, MANAGERS - 1), warm)
    results["cached"] = timed(samples, cached)
    results["partner"] = timed(samples, partner)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partners", type=int, default=2_000)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    spec = BenchSpec(partners=args.partners, deals=args.deals, seed=args.seed)
    load = ensure_database(spec, args.db)
    print(f"bench file {args.db}: {load.counts}")
    store = open_store(f"sqlite:///{args.db}")
    app = AppConfig.model_validate(
        {
            "stages": BENCH_APP.stages,  # the generator's pipeline, and the tiers
            "kpi": BENCH_APP.kpi.model_dump(),
            "access": {"external": {"domains": {"partner.example": "001BN0000000000001"}}},
            "digests": [{"name": "weekly", "channel": "C0DIGEST", "schedule": "0 9 * * mon"}],
        }
    )
    results: dict[str, Any] = {"machine": machine(), "spec": spec.marker()}
    with FakeSlack() as fake:
        for n in range(MANAGERS):
            fake.add_user(f"M{n}", f"manager{n}", email=f"manager{n}@example.com")
        fake.add_user("UX", "pat", email="pat@partner.example", team_id="T2", is_stranger=True)
        for bot in start_bot(store, fake, app):
            results |= measure(bot, fake, store, args.samples)
    store.engine.dispose()
    print(f"{'case':<8} {'samples':>7} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for case in ("cold", "warm", "cached", "partner"):
        row = results[case]
        print(
            f"{case:<8} {row['samples']:>7} {row['p50_ms']:>9.1f} {row['p95_ms']:>9.1f}"
            f" {row['max_ms']:>9.1f}"
        )
    verdict = "met" if results["cold"]["p95_ms"] <= BUDGET_MS else "MISSED"
    print(f"cold p95 within views.publish's 3 s after the event: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

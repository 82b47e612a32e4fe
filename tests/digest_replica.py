"""One scheduler replica in its own OS process, for tests/test_digest_processes.py.

    python tests/digest_replica.py DATABASE_URL SLACK_API_URL BARRIER_DIR INDEX COUNT NOW...

Opens the shared database, builds its own DigestScheduler (own engine, own Slack client), and
for each NOW (an ISO time, the scheduler's clock for that round) waits at a file barrier until
all COUNT replicas are ready, then ticks once and prints the outcomes as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

# The repository root, so `bot` and `kpi` import when run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.scheduler import DigestScheduler
from bot.slack_app import web_client
from kpi.store import open_store
from settings.app import AppConfig, LoadedConfig

CHANNEL = "C0DIGEST"
BARRIER_TIMEOUT = 30.0


def config(url: str) -> LoadedConfig:
    app = AppConfig.model_validate(
        {
            "digests": [
                {
                    "name": "weekly",
                    "channel": CHANNEL,
                    "schedule": "0 9 * * mon",
                    "timezone": "Europe/Berlin",
                    "period": "last-7d",
                }
            ],
            "scheduler": {"sync": {"schedule": None}},
        }
    )
    return LoadedConfig(app, None, Path("."), url)


def barrier(directory: Path, name: str, index: int, count: int) -> None:
    (directory / f"{name}.{index}").touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while len(list(directory.glob(f"{name}.*"))) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"replica {index}: the others never reached {name}")
        time.sleep(0.002)


def main(argv: list[str]) -> None:
    url, api_url, barrier_dir, index, count, *nows = argv
    store = open_store(url, migrate=False)
    clock_now = [datetime.fromisoformat(nows[0])]
    scheduler = DigestScheduler(
        store,
        config(url),
        web_client("xoxb-test", api_url),
        clock=lambda: clock_now[0],
        replica=f"process-{index}",
        chart=False,
    )
    for number, now in enumerate(nows):
        clock_now[0] = datetime.fromisoformat(now)
        barrier(Path(barrier_dir), f"round{number}", int(index), int(count))
        outcomes = scheduler.tick()
        print(
            json.dumps(
                {
                    "round": number,
                    "replica": int(index),
                    "outcomes": [{"action": o.action, "key": o.key, "ts": o.ts} for o in outcomes],
                }
            ),
            flush=True,
        )
    store.engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])

"""Alert rules: checked after each sync, each event posted once to the loopback Slack however many
replicas check, not again while the condition holds, and a recovery once when it ends. The store
tests run on SQLite, and on PostgreSQL when PARTNER_KPI_TEST_DATABASE_URL names one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from bot.alerts.job import AlertJob, run_key
from bot.alerts.watch import Watcher
from bot.cli import cli
from bot.cli_common import Context
from bot.slack_app import web_client
from kpi import schema
from kpi.formulas import KPI_KEYS
from kpi.models import Deal, DealStatus, Partner
from kpi.store import Store
from settings.app import AppConfig, parse_config
from settings.base import ConfigError
from settings.periods import parse_period
from settings.vocab import PARTNER_KPI_KEYS
from tests.fake_slack import FakeSlack

TODAY = date(2026, 11, 22)  # last-90d: [Aug 25, Nov 23); the previous period [May 27, Aug 25)
CHANNEL = "C0ALERTS"
DROP = {
    "name": "revenue-drop",
    "channel": CHANNEL,
    "kpi": "won_revenue",
    "period": "last-90d",
    "comparison": "down_percent",
    "threshold": 30,
}


def won(partner: str, number: int, amount: int, closed: date) -> Deal:
    return Deal(
        id=f"D-{partner}-{number}",
        partner_id=partner,
        name=f"Deal {number}",
        amount=Decimal(amount),
        status=DealStatus.WON,
        created_on=date(2026, 1, 1),
        closed_on=closed,
    )


def synced(store: Store, records: list[Any], status: str = "ok", error: str | None = None) -> int:
    """Writes `records` and records a finished sync run: a new data version."""
    if records:
        with store.transaction() as connection:
            store.upsert(connection, records, "test")
    run = store.start_sync("test", full=False)
    store.finish_sync(run, status, {}, error=error)
    return run


def seed(store: Store) -> None:
    """Acme: 10,000 won before, 5,000 now (down 50%); Globex: 10,000 and 10,000 (flat)."""
    partners = [
        Partner(id="P1", name="Acme <Corp>", joined_on=date(2024, 1, 1)),
        Partner(id="P2", name="Globex", joined_on=date(2024, 1, 1)),
    ]
    deals = [
        won("P1", 1, 10_000, date(2026, 7, 1)),
        won("P1", 2, 5_000, date(2026, 10, 1)),
        won("P2", 1, 10_000, date(2026, 7, 1)),
        won("P2", 2, 10_000, date(2026, 10, 1)),
    ]
    synced(store, [*partners, *deals])


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(wall_clock_ts=True) as server:  # a history read from the claim's time
        server.add_channel(CHANNEL, "partner-alerts")
        yield server


def app_with(*rules: dict[str, Any], **more: Any) -> AppConfig:
    return AppConfig.model_validate({"alerts": list(rules), **more})


def job(store: Store, fake: FakeSlack, app: AppConfig, replica: str) -> AlertJob:
    client = web_client("xoxb-test", fake.api_url)
    return AlertJob(store, app, client, replica=replica, today=lambda: TODAY)


def posts(fake: FakeSlack) -> list[str]:
    """The text of every alert posted, oldest first."""
    return [str(m["text"]) for m in fake.messages_in(CHANNEL)]


def blocks_text(fake: FakeSlack, index: int) -> str:
    message = fake.messages_in(CHANNEL)[index]
    return "\n".join(b["text"]["text"] for b in message["blocks"] if "text" in b)


def age_claims(store: Store, **values: Any) -> None:
    """Makes every alert claim 16 minutes old (past the 15 of stale_claim_minutes)."""
    aged = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=16)
    with store.transaction() as connection:
        connection.execute(
            update(schema.send_log)
            .where(schema.send_log.c.kind == "alert")
            .values(claimed_at=aged, **values)
        )


def test_a_rule_fires_once_across_replicas_and_restarts_then_recovers_once(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    app = app_with(DROP)
    first, second = job(store, fake, app, "r1"), job(store, fake, app, "r2")
    assert first.tick() is not None and second.tick() is None
    assert posts(fake) == ["revenue-drop: 1 new, 0 back to normal"]
    text = blocks_text(fake, 0)
    assert "*Acme &lt;Corp&gt;*: $5,000, previous period $10,000" in text
    assert "Globex" not in text
    restarted = job(store, fake, app, "r1")  # a new process: no memory but the send log
    assert restarted.tick() is None and len(posts(fake)) == 1
    # A new sync with the condition still holding: nothing more
    synced(store, [])
    assert second.tick() is not None and first.tick() is None
    assert len(posts(fake)) == 1
    # Acme wins 5,000 more: 10,000 now, no drop; the recovery is posted once
    synced(store, [won("P1", 3, 5_000, date(2026, 10, 15))])
    first.tick()
    second.tick()
    restarted.tick()
    assert posts(fake)[1:] == ["revenue-drop: 0 new, 1 back to normal"]
    recovered = blocks_text(fake, 1)
    assert recovered.startswith("*:white_check_mark: revenue-drop · Won revenue (last-90d) down")
    assert "*Acme &lt;Corp&gt;*: $10,000, previous period $10,000" in recovered
    sends = [row for row in store.claims("alert") if row["posted_at"] is not None]
    assert len(sends) == 2 and all(row["slack_ts"] for row in sends)


def test_two_replicas_checking_the_same_version_post_each_event_once(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    app = app_with(DROP)
    version = store.last_sync(status=None).id  # type: ignore[union-attr]
    outcomes = [job(store, fake, app, name).check(version) for name in ("r1", "r2")]
    assert [len(o[0].events) for o in outcomes] == [1, 0]  # the second finds the key taken
    assert len(posts(fake)) == 1


def test_replicas_ticking_at_the_same_moment_post_once(store: Store, fake: FakeSlack) -> None:
    seed(store)
    app = app_with(DROP)
    replicas = [job(store, fake, app, f"r{n}") for n in range(4)]
    start = threading.Barrier(len(replicas))

    def tick(alerts: AlertJob) -> None:
        start.wait()
        alerts.tick()

    threads = [threading.Thread(target=tick, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert posts(fake) == ["revenue-drop: 1 new, 0 back to normal"]


def test_a_check_waits_while_a_replica_checks_another_version(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    earlier = store.last_sync(status=None).id  # type: ignore[union-attr]
    store.claim(run_key(earlier), "alert-run", "r0", {"version": earlier})  # r0 is on it
    synced(store, [])
    alerts = job(store, fake, app_with(DROP), "r1")
    assert alerts.tick() is None and posts(fake) == []
    store.mark_sent(run_key(earlier), None)  # r0 done (it posted nothing here)
    assert alerts.tick() is not None
    assert posts(fake) == ["revenue-drop: 1 new, 0 back to normal"]


def test_a_refused_post_is_retried_after_the_stale_time_and_not_doubled(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    app = app_with(DROP)
    fake.fail_next("chat.postMessage", "channel_not_found", status=200)
    first = job(store, fake, app, "r1")
    first.tick()
    assert posts(fake) == []
    age_claims(store)
    second = job(store, fake, app, "r2")
    second.tick()
    first.tick()
    assert posts(fake) == ["revenue-drop: 1 new, 0 back to normal"]


def test_a_post_a_dead_replica_made_is_found_and_not_posted_again(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    app = app_with(DROP)
    first = job(store, fake, app, "r1")
    first.tick()
    age_claims(store, posted_at=None, slack_ts=None)  # as if r1 died before recording
    job(store, fake, app, "r2").tick()
    assert len(posts(fake)) == 1
    (row,) = store.claims("alert")
    assert row["slack_ts"] == fake.messages_in(CHANNEL)[0]["ts"]


def test_sync_trouble_fires_on_a_refusal_or_two_failures_and_recovers(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    app = app_with({"name": "sync", "channel": CHANNEL, "kpi": "sync", "comparison": "failed"})
    alerts = job(store, fake, app, "r1")
    synced(store, [], "failed", "Salesforce refused the login")
    alerts.tick()
    assert posts(fake) == []  # one failure is not two
    synced(store, [], "failed", "Salesforce refused the login\nsecond line")
    alerts.tick()
    assert "The last 2 syncs failed: Salesforce refused the login." in blocks_text(fake, 0)
    synced(store, [])
    alerts.tick()
    assert "The last sync finished: ok." in blocks_text(fake, 1)
    synced(store, [], "refused", "would delete 80% of deals")
    alerts.tick()
    assert "refused by the deletion guard: would delete 80% of deals" in blocks_text(fake, 2)
    assert len(posts(fake)) == 3


def test_a_tier_change_is_posted_after_a_silent_first_look(store: Store, fake: FakeSlack) -> None:
    seed(store)
    # Of two partners, the one ahead on won revenue and deal size scores 75 (its tie on close
    # rate, velocity and courses gives 50 each): (0.3*100 + 0.15*100 + 0.45*50) / 0.9; the other 25
    tiers = [{"name": "Gold", "min_score": 70}, {"name": "Silver", "min_score": 0}]
    app = app_with(
        {"name": "tiers", "channel": CHANNEL, "kpi": "tier", "comparison": "changed"},
        kpi={"tiers": tiers},
    )
    alerts = job(store, fake, app, "r1")
    alerts.tick()
    assert posts(fake) == []  # Globex (more revenue) Gold, Acme Silver: remembered, not posted
    # Acme wins 20,000 more: it outranks Globex, which falls to Silver
    synced(store, [won("P1", 3, 20_000, date(2026, 10, 20))])
    alerts.tick()
    text = blocks_text(fake, 0)
    assert "*Acme &lt;Corp&gt;*: tier Silver → *Gold*" in text
    assert "*Globex*: tier Gold → *Silver*" in text


def test_any_numeric_kpi_of_the_engine_can_be_watched(store: Store) -> None:
    """account_retention (kpi-spec section 7) as any other key: read from the engine's cards."""
    seed(store)
    app = app_with(
        {
            "name": "retention",
            "channel": CHANNEL,
            "kpi": "account_retention",
            "comparison": "below",
            "threshold": 0.8,
        }
    )
    watcher = Watcher(store, app, lambda: TODAY)
    cards = watcher.engine.all_partners(parse_period("last-90d", TODAY))
    cards["P1"]["kpis"]["account_retention"] = 0.75
    cards["P2"]["kpis"]["account_retention"] = 0.8  # at the line: not below it
    watcher._cards["last-90d"] = cards
    seen = {o.subject: o.holds for o in watcher.observe(app.alerts[0])}
    assert seen == {"P1": True, "P2": False}
    assert set(KPI_KEYS) <= set(PARTNER_KPI_KEYS)


def test_a_bad_rule_is_one_sentence_naming_its_path() -> None:
    text = "alerts:\n"
    text += "  - {name: ok, channel: C1, kpi: won_revenue, comparison: below, threshold: 1}\n"
    text += "  - {name: bad, channel: C1, kpi: won_revenue, comparison: down_percent}\n"
    with pytest.raises(ConfigError) as error:
        parse_config(text, Path("app.yaml"))
    assert str(error.value) == (
        "app.yaml: alerts[1].threshold: comparison down_percent needs a threshold"
    )
    with pytest.raises(ConfigError) as error:
        parse_config(
            "alerts: [{name: a, channel: C1, kpi: won_revnue, comparison: below, threshold: 1}]",
            Path("app.yaml"),
        )
    assert str(error.value).startswith("app.yaml: alerts[0].kpi: unknown KPI 'won_revnue'")


def test_the_dry_run_shows_what_would_fire_and_posts_nothing(store: Store, tmp_path: Path) -> None:
    seed(store)
    config = tmp_path / "app.yaml"
    config.write_text(
        f"database_url: {store.engine.url.render_as_string(hide_password=False)}\n"
        "alerts:\n"
        "  - {name: revenue-drop, channel: C0ALERTS, kpi: won_revenue, comparison: down_percent,"
        " threshold: 30}\n"
        "  - {name: none, channel: C0ALERTS, kpi: won_revenue, comparison: above,"
        " threshold: 1000000}\n"
    )
    runner = CliRunner()
    arguments = ["--config", str(config), "alerts", "--dry-run", "--as-of", "2026-11-22"]
    result = runner.invoke(cli, arguments, obj=Context(None))
    assert result.exit_code == 0, result.output
    assert "fired: Acme <Corp>:" in result.output and "Globex" not in result.output
    assert "none: won_revenue (last-90d) above $1,000,000 → C0ALERTS\n  nothing" in result.output
    assert store.claims("alert") == []
    listing = runner.invoke(cli, ["--config", str(config), "jobs"], obj=Context(None))
    assert "alert:revenue-drop" in listing.output and "after every sync" in listing.output


# --- goal status changes (kpi-spec.md section 9) ----------------------------------------------

# 2026-Q4 won revenue: Acme has 5,000 of 8,000 (closed Oct 1), Globex 10,000 of 10,000.
# Acme's pace is 5,000 x 92 / (8,000 x days to date): 53 days as of Nov 22 -> 1.085, on track;
# 62 as of Dec 1 -> 0.927, behind; 71 as of Dec 10 -> 0.810, behind; 81 as of Dec 20 -> 0.710,
# at risk. Globex's stays at least 92/81 = 1.136 (on track) all along.
Q4_GOALS = [
    {"partner": "P1", "kpi": "won_revenue", "period": "2026-Q4", "target": 8000},
    {"partner": "Globex", "kpi": "won_revenue", "period": "2026-Q4", "target": 10000},
]
GOAL_RULE = {"name": "goals", "channel": CHANNEL, "kpi": "goal_status", "comparison": "changed"}


def goal_job(store: Store, fake: FakeSlack, app: AppConfig, days: list[date]) -> AlertJob:
    """A replica whose today is the last of `days` (a test appends to it)."""
    client = web_client("xoxb-test", fake.api_url)
    return AlertJob(store, app, client, replica="r1", today=lambda: days[-1])


def test_a_goal_falling_behind_is_posted_once_after_a_silent_first_look(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    days = [TODAY]
    app = app_with(GOAL_RULE, goals=Q4_GOALS)
    alerts = goal_job(store, fake, app, days)
    first = alerts.tick()
    assert first is not None and [e.kind for e in first[0].events] == ["baseline", "baseline"]
    assert posts(fake) == []  # both on track: remembered, told to nobody
    synced(store, [])
    days.append(date(2026, 12, 1))
    alerts.tick()
    assert posts(fake) == ["goals: 1 new, 0 back to normal"]
    text = blocks_text(fake, 0)
    assert "goals · Partners' goals · status changed" in text
    assert "• Acme &lt;Corp&gt;: 2026-Q4 won revenue $5k of $8k (62%) · pace 93%, behind" in text
    assert text.endswith("(was on track)") and "Globex" not in text
    # Still behind on Dec 10, and a second replica checking the same version: nothing more
    synced(store, [])
    days.append(date(2026, 12, 10))
    assert alerts.tick() is not None
    assert job(store, fake, app, "r2").tick() is None
    assert len(posts(fake)) == 1


def test_a_goal_rule_with_statuses_posts_only_changes_to_them(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    days = [TODAY]
    rule = {**GOAL_RULE, "name": "goals-at-risk", "statuses": ["at_risk"]}
    alerts = goal_job(store, fake, app_with(rule, goals=Q4_GOALS), days)
    for day in (date(2026, 12, 1), date(2026, 12, 20)):  # behind, then at risk
        alerts.tick()
        synced(store, [])
        days.append(day)
    alerts.tick()
    assert posts(fake) == ["goals-at-risk: 1 new, 0 back to normal"]  # behind went unposted
    text = blocks_text(fake, 0)
    assert "status changed to at risk" in text
    assert "pace 71%, at risk" in text and text.endswith("(was behind)")


def test_a_bad_goal_rule_names_its_path() -> None:
    bad = [
        ({**GOAL_RULE, "statuses": ["behind", "late"]}, "alerts[0].statuses[1]: Input should be"),
        ({**GOAL_RULE, "threshold": 1}, "alerts[0].threshold: a goal status change takes no"),
        ({**GOAL_RULE, "comparison": "below"}, "alerts[0].comparison: kpi goal_status takes"),
        ({**DROP, "statuses": ["behind"]}, "alerts[0].statuses: statuses belong to a rule of"),
    ]
    for rule, message in bad:
        with pytest.raises(ConfigError) as error:
            parse_config(f"alerts: [{rule!r}]".replace("'", '"'), Path("app.yaml"))
        assert str(error.value).startswith(f"app.yaml: {message}"), str(error.value)


def test_the_dry_run_lists_a_goal_rule_and_what_it_would_post(
    store: Store, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(store)
    config = tmp_path / "app.yaml"
    config.write_text(
        f"database_url: {store.engine.url.render_as_string(hide_password=False)}\n"
        "alerts:\n"
        "  - {name: goals, channel: C0ALERTS, kpi: goal_status, comparison: changed,"
        " statuses: [behind, at_risk]}\n"
        "goals:\n"
        "  - {partner: P1, kpi: won_revenue, period: 2026-Q4, target: 8000}\n"
    )
    arguments = ["--config", str(config), "alerts", "--dry-run", "--as-of", "2026-12-01"]
    result = CliRunner().invoke(cli, arguments, obj=Context(None))
    assert result.exit_code == 0, result.output
    assert result.output == (
        "goals: goal status changed to behind, at_risk → C0ALERTS\n"
        "  1 goal status(es) would be remembered, not posted (first look, or a status the rule"
        " leaves out)\n"
    )
    assert store.claims("alert") == []
    # Once the on-track status of Nov 22 is remembered, Dec 1's "behind" would be posted
    goal_job(store, fake, parse_config(config.read_text(), config).app, [TODAY]).tick()
    result = CliRunner().invoke(cli, arguments, obj=Context(None))
    assert result.output.endswith(
        "  changed: Acme <Corp>: 2026-Q4 won revenue $5k of $8k (62%) · pace 93%, behind"
        " · forecast $5k · pipeline covers 0.0× what is left (was on track)\n"
    ), result.output
    assert posts(fake) == []

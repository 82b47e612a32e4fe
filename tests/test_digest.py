"""The digest: its app.yaml settings, its contents, Block Kit limits for 2,000 partners, the
chart PNG, its upload (and text fallback) to a loopback Slack, snapshots, and the commands."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib import image
from sqlalchemy import select

from bot.blockkit import violations
from bot.cli import main
from bot.digest import render_chart_fallback, render_digest
from bot.digest_chart import chart_png
from bot.digest_post import post_digest
from bot.formatting import format_change
from bot.messages import escape_mrkdwn
from bot.scheduler import DigestScheduler
from bot.slack_app import web_client
from kpi import schema
from kpi.digest_data import build_digest, digest_period
from kpi.engine import KpiEngine
from kpi.models import Deal, DealStatus, Partner
from kpi.snapshots import PROGRAM_ID, latest_snapshot, save_snapshot, trailing_snapshots
from kpi.store import Store, open_store
from settings.app import AppConfig, LoadedConfig, parse_config
from settings.base import ConfigError
from settings.digests import DigestConfig
from tests.fake_slack import FakeSlack, validate_blocks

RUN_AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
EVIL = "<!channel> & <https://evil.example|click>"


def seed(store: Store, partners: int, deals_each: int = 4, long_names: bool = False) -> None:
    """`partners` partners and their deals, generated straight into the store."""
    records: list[Any] = []
    for i in range(partners):
        name = f"Partner {i:04d} " + (
            "Systemhaus und Beratung GmbH & Co. KG " * 3 if long_names else ""
        )
        if i == 3:
            name = EVIL
        records.append(
            Partner(
                id=f"P{i:04d}",
                name=name.strip(),
                tier=("Gold", "Silver", "Registered")[i % 3],
                joined_on=date(2026, 11, 18) if i % 97 == 5 else date(2024, 1, 1),
                left_on=date(2026, 11, 20) if i % 89 == 7 else None,
                owner_email=f"owner{i % 4}@ourco.example",
                region=("EMEA", "AMER", None)[i % 3 if i % 2 else 0],
            )
        )
        for j in range(deals_each):
            won = (i * 7 + j) % 3 != 0
            records.append(
                Deal(
                    id=f"D{i:04d}-{j}",
                    partner_id=f"P{i:04d}" if j else None if i % 5 == 0 else f"P{i:04d}",
                    name=f"Deal {j}",
                    amount=Decimal(500 + (i * 37 + j * 911) % 20000),
                    status=DealStatus.WON if won else DealStatus.LOST,
                    created_on=date(2026, 9, 1),
                    closed_on=date(2026, 11, 22) - timedelta(days=(i + 5 * j) % 70),
                )
            )
    with store.transaction() as connection:
        store.upsert(connection, records, "test")
    run = store.start_sync("test", full=True)
    store.finish_sync(run, "ok", {})


def weekly(**extra: Any) -> DigestConfig:
    return DigestConfig.model_validate(
        {
            "name": "weekly",
            "channel": "C0DIGEST",
            "schedule": "0 9 * * mon",
            "timezone": "Europe/Berlin",
            **extra,
        }
    )


APP = AppConfig()


# --- app.yaml ---------------------------------------------------------------------------------


def test_digest_settings_are_validated_with_their_path(tmp_path: Path) -> None:
    text = """
digests:
  - name: weekly
    channel: "#partners"
    schedule: "0 9 * * mon"
    timezone: Europe/Berlin
  - name: monthly
    channel: C1
    schedule: "0 25 1 * *"
    timezone: Europe/Berlim
    period: last-week
    sections: [program, charts]
    partners: {tier: [Gold]}
    trailing_quarters: 13
scheduler:
  grace_hours: -1
"""
    with pytest.raises(ConfigError) as raised:
        parse_config(text, tmp_path / "app.yaml")
    lines = str(raised.value).splitlines()
    assert any(
        line.startswith("app.yaml: digests[1].schedule: '0 25 1 * *' is not a cron")
        for line in lines
    )
    assert any("digests[1].timezone: unknown timezone 'Europe/Berlim'" in line for line in lines)
    assert any('digests[1].period: "last-week" is not a period' in line for line in lines)
    assert any("digests[1].sections[1]:" in line for line in lines)
    assert any(
        "digests[1].partners.tier: unknown field; expected one of tiers, owners, regions, ids"
        in line
        for line in lines
    )
    assert any("scheduler.grace_hours:" in line for line in lines)
    assert any(line.startswith("app.yaml: digests[1].trailing_quarters:") for line in lines)
    assert not any("digests[0]" in line for line in lines)


def test_digest_defaults_and_distinct_names(tmp_path: Path) -> None:
    config = parse_config(
        'digests: [{name: w, channel: C1, schedule: "0 9 * * mon"}]', tmp_path / "app.yaml"
    ).app
    (digest,) = config.digests
    assert (digest.period, digest.timezone, digest.top) == ("last-7d", None, 10)
    assert digest.trailing_quarters == 4
    assert digest.sections[0] == "program" and "chart" in digest.sections
    assert config.scheduler.grace_hours == 6 and config.scheduler.sync.schedule == "0 * * * *"
    with pytest.raises(ConfigError, match="two digests are named 'w'"):
        parse_config(
            'digests: [{name: w, channel: C1, schedule: "0 9 * * *"},'
            ' {name: W, channel: C2, schedule: "0 9 * * *"}]',
            tmp_path / "app.yaml",
        )
    with pytest.raises(ConfigError, match=r"digests\[0\]\.schedule: .*five fields"):
        parse_config('digests: [{name: w, channel: C1, schedule: "@weekly"}]', tmp_path / "a")


# --- contents ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_digest_for_2000_partners_fits_block_kit(store: Store) -> None:
    seed(store, 2000, deals_each=3, long_names=True)
    data = build_digest(store, APP, weekly(), RUN_AT)
    assert data.partner_count == 2000
    assert (data.period.start, data.period.end) == (date(2026, 11, 16), date(2026, 11, 23))
    message = render_digest(data, "USD")
    assert violations(message.blocks) == []
    assert validate_blocks(message.blocks) is None
    assert len(json.dumps(message.blocks, ensure_ascii=False)) < 12_000
    assert len(message.text) < 3000
    text = json.dumps(message.blocks, ensure_ascii=False)
    # Every section made it (nothing was cut for size), and CRM text was escaped.
    for heading in ("*Top 10 by quality score* (of", "*Biggest movers*", "*At risk*", "Joined ("):
        assert heading in text
    assert "… and" in text and "more" in text
    assert "<!channel>" not in text
    assert len(data.leaders) == 10 and data.leaders[0]["rank"] == 1


def test_the_digest_shows_what_moved(store: Store) -> None:
    seed(store, 30)
    data = build_digest(store, APP, weekly(), RUN_AT, now=datetime.now(UTC))
    assert data.warning is None
    assert data.movers_basis == "since the previous period"
    up, down = data.movers["won_revenue"]
    assert up and down and all(m.delta > 0 for m in up) and all(m.delta < 0 for m in down)
    assert [abs(m.delta) for m in up] == sorted((abs(m.delta) for m in up), reverse=True)
    assert data.joined == ["Partner 0005"]
    # A second run a week later compares with the snapshot the first one stored.
    save_snapshot(store, RUN_AT, data.period, data.cards, program=data.program_card)
    later = build_digest(store, APP, weekly(period="last-90d"), RUN_AT + timedelta(days=7))
    assert later.movers_basis == "since the previous period"  # another period: no snapshot
    same = build_digest(store, APP, weekly(), RUN_AT + timedelta(days=7))
    assert same.movers_basis == "since the run of 2026-11-23"


def test_a_partner_filter_narrows_everything(store: Store) -> None:
    seed(store, 30)
    data = build_digest(store, APP, weekly(partners={"tiers": ["gold"]}), RUN_AT)
    assert data.filtered and data.partner_count == 10
    assert all(card["partner"]["id"] in data.cards for card in data.leaders)
    everyone = build_digest(store, APP, weekly(), RUN_AT)
    assert data.program["kpis"]["partner_revenue"] < everyone.program["kpis"]["partner_revenue"]
    owned = build_digest(
        store,
        APP,
        weekly(partners={"owners": ["OWNER1@ourco.example"], "ids": ["P0001", "P0002"]}),
        RUN_AT,
    )
    assert set(owned.cards) == {"P0001"}
    emea = build_digest(store, APP, weekly(partners={"regions": ["emea"]}), RUN_AT)
    assert set(emea.cards) == {f"P{i:04d}" for i in range(30) if i % 2 == 0 or i % 3 == 0}
    assert "10 partners chosen" in json.dumps(render_digest(data, "USD").blocks)


def test_every_of_n_is_ranked_partners_and_leaders_carry_their_rank(store: Store) -> None:
    seed(store, 30)
    data = build_digest(store, APP, weekly(partners={"tiers": ["gold"]}, top=3), RUN_AT)
    everyone = KpiEngine(store, APP.kpi_settings).all_partners(data.period).values()
    scored = sorted((c for c in everyone if c["quality_score"] is not None), key=score_of)
    assert len(scored) > data.partner_count  # all partners are ranked, not the 10 chosen
    text = render_digest(data, "USD").text + json.dumps(render_digest(data, "USD").blocks)
    assert f"by quality score* (of {len(scored)})" in text
    for card in data.leaders:  # numbered as the scorecards rank them, among every partner
        better = sum(1 for other in scored if score_of(other) > score_of(card))
        assert card["rank"] == better + 1 and f"{better + 1}. " in text


def score_of(card: dict[str, Any]) -> float:
    return float(card["quality_score"])


def test_stale_or_failed_syncs_are_warned_about(store: Store) -> None:
    never = build_digest(store, APP, weekly(), RUN_AT)
    assert never.warning is not None and never.warning.cause == "never-synced"
    assert render_digest(never, "USD").text.startswith(":warning: No sync has finished yet")
    seed(store, 5)
    late = RUN_AT + timedelta(days=3)
    data = build_digest(store, APP, weekly(), late, now=datetime.now(UTC) + timedelta(days=2))
    assert data.warning is not None and data.warning.cause == "too-old"
    warning = render_digest(data, "USD").text
    assert warning.startswith(":warning: The data was last synced 2 days ago")
    assert "longer than this digest allows (24 hours); check the sync." in warning
    run = store.start_sync("test", full=False)
    store.finish_sync(run, "failed", {}, error="INVALID_LOGIN: bad password\nmore")
    data = build_digest(store, APP, weekly(), RUN_AT, now=datetime.now(UTC))
    assert data.warning is not None and data.warning.cause == "sync-failed"
    message = render_digest(data, "USD")
    assert message.text.startswith(":warning: The last sync failed just now (INVALID_LOGIN: ")
    assert "bad password); these numbers are from the sync of " in message.text


def test_snapshots_keep_every_partner_and_read_back_newest_first(store: Store) -> None:
    seed(store, 12)
    for week in range(3):
        run = RUN_AT + timedelta(days=7 * week)
        data = build_digest(store, APP, weekly(), run)
        save_snapshot(store, run, data.period, data.cards, program=data.program_card)
    again = build_digest(store, APP, weekly(), RUN_AT)
    save_snapshot(store, RUN_AT, again.period, again.cards, program=again.program_card)  # twice
    found = trailing_snapshots(store, "last-7d", RUN_AT + timedelta(days=30), limit=5)
    assert [s.run_at for s in found] == [RUN_AT + timedelta(days=7 * w) for w in (2, 1, 0)]
    assert all(len(s.partners) == 13 and PROGRAM_ID in s.partners for s in found)
    assert set(found[0].partners["P0001"]) >= {"won_revenue", "quality_score", "rank"}
    assert trailing_snapshots(store, "last-7d", RUN_AT) == []


# --- the trailing-quarter comparison ----------------------------------------------------------


def store_snapshot(
    store: Store,
    run: datetime,
    digest: DigestConfig,
    program: dict[str, Any],
    partners: dict[str, dict[str, Any]] | None = None,
) -> None:
    """A snapshot of `digest`'s period as the run at `run` would have stored it, with the
    given program KPIs and partner rows (a partner's quality_score goes to its card)."""
    period = digest_period(digest, APP, run)
    cards = {
        pid: {
            "kpis": {k: v for k, v in row.items() if k != "quality_score"},
            "quality_score": row.get("quality_score"),
            "rank": None,
        }
        for pid, row in (partners or {}).items()
    }
    save_snapshot(
        store, run, period, cards, program={"kpis": program, "quality_score": None, "rank": None}
    )


def section_text(message: Any, starts: str) -> str:
    return next(
        str(block["text"]["text"])
        for block in message.blocks
        if block.get("type") == "section" and block["text"]["text"].startswith(starts)
    )


def context_text(message: Any) -> str:
    return "\n".join(
        element["text"]
        for block in message.blocks
        if block.get("type") == "context"
        for element in block["elements"]
    )


def test_program_and_leaders_compare_with_the_average_of_four_quarters(store: Store) -> None:
    seed(store, 12)
    digest = weekly()
    leader = build_digest(store, APP, digest, RUN_AT).leaders[0]["partner"]["id"]
    # Sixty weekly runs before this one; the last 52 lie within four quarters of this period.
    for k in range(1, 61):
        store_snapshot(
            store,
            RUN_AT - timedelta(days=7 * k),
            digest,
            {"partner_revenue": 100.0 * k, "deal_count": k % 4},
            {leader: {"quality_score": 50.0 + 10 * (k % 2)}},
        )
    data = build_digest(store, APP, digest, RUN_AT)
    trailing = data.trailing
    assert trailing is not None and trailing.complete
    assert (trailing.runs, trailing.since) == (52, date(2025, 11, 16))
    assert trailing.first == date(2025, 11, 17)
    assert trailing.program["partner_revenue"] == pytest.approx(100 * sum(range(1, 53)) / 52)
    assert trailing.program["deal_count"] == pytest.approx(sum(k % 4 for k in range(1, 53)) / 52)
    assert trailing.program["close_rate"] is None  # no snapshot kept it
    assert trailing.quality == {leader: pytest.approx(55.0)}

    message = render_digest(data, "USD")
    program = section_text(message, "*Partner revenue*")
    trend = format_change("partner_revenue", data.program["kpis"]["partner_revenue"], 2650.0)
    assert program.splitlines()[0].endswith(f"· 4-quarter avg $2,650 ({trend})")
    close_rate = next(line for line in program.splitlines() if line.startswith("*Close rate*"))
    assert "avg" not in close_rate
    first_leader = section_text(message, "*Top 10").splitlines()[1]
    assert "· 4-quarter avg 55.0" in first_leader
    assert "the average of 52 snapshots of last-7d over the last 4 quarters" in context_text(
        message
    )
    assert validate_blocks(message.blocks) is None


def test_too_little_history_is_said_plainly(store: Store) -> None:
    seed(store, 8)
    digest = weekly()
    data = build_digest(store, APP, digest, RUN_AT)
    assert data.trailing is not None and data.trailing.runs == 0
    message = render_digest(data, "USD")
    assert "No trailing-quarter comparison yet" in context_text(message)
    assert "avg" not in section_text(message, "*Partner revenue*")

    for k, revenue in ((1, 300.0), (2, 600.0), (3, 1200.0)):
        store_snapshot(store, RUN_AT - timedelta(days=7 * k), digest, {"partner_revenue": revenue})
    store_snapshot(store, RUN_AT + timedelta(days=7), digest, {"partner_revenue": 1e9})  # later
    data = build_digest(store, APP, digest, RUN_AT)
    trailing = data.trailing
    assert trailing is not None and not trailing.complete and trailing.runs == 3
    assert trailing.program["partner_revenue"] == pytest.approx(700.0)
    message = render_digest(data, "USD")
    assert "· avg of 3 runs $700" in section_text(message, "*Partner revenue*")
    assert (
        "not enough history yet for a 4-quarter average; this averages the 3 snapshots of "
        "last-7d stored since 2026-10-26." in context_text(message)
    )

    off = build_digest(store, APP, weekly(trailing_quarters=0), RUN_AT)
    assert off.trailing is None
    rendered = json.dumps(render_digest(off, "USD").blocks)
    assert "avg of" not in rendered and "trailing" not in rendered.lower()


def test_a_quarterly_digest_averages_the_last_four_quarters(store: Store) -> None:
    seed(store, 6)
    quarterly = weekly(period="last-quarter")
    run = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)  # Monday 09:00 in Berlin: Q3 2026
    # The runs on the first Monday of each quarter; the oldest is five quarters back.
    runs = {
        datetime(2025, 7, 7, 7, 0, tzinfo=UTC): 100_000.0,  # Q2 2025: outside the window
        datetime(2025, 10, 6, 7, 0, tzinfo=UTC): 1000.0,  # Q3 2025
        datetime(2026, 1, 5, 8, 0, tzinfo=UTC): 2000.0,  # Q4 2025
        datetime(2026, 4, 6, 7, 0, tzinfo=UTC): 3000.0,  # Q1 2026
        datetime(2026, 7, 6, 7, 0, tzinfo=UTC): 6000.0,  # Q2 2026
    }
    for when, revenue in runs.items():
        store_snapshot(store, when, quarterly, {"partner_revenue": revenue})
    data = build_digest(store, APP, quarterly, run)
    assert (data.period.start, data.period.end) == (date(2026, 7, 1), date(2026, 10, 1))
    trailing = data.trailing
    assert trailing is not None and trailing.complete and trailing.runs == 4
    assert trailing.program["partner_revenue"] == pytest.approx(3000.0)
    two = build_digest(store, APP, weekly(period="last-quarter", trailing_quarters=2), run)
    assert two.trailing is not None and two.trailing.program["partner_revenue"] == 4500.0


def test_a_filtered_digest_sums_its_partners_rows_of_each_snapshot(store: Store) -> None:
    seed(store, 6)
    digest = weekly(partners={"ids": ["P0001", "P0002"]})
    rows = [
        ({"P0001": 100.0, "P0002": 200.0, "P0004": 5000.0}, 1000.0),
        ({"P0001": 300.0, "P0002": 100.0, "P0004": 1.0}, 2000.0),
    ]
    for k, (revenues, program) in enumerate(rows, start=1):
        store_snapshot(
            store,
            RUN_AT - timedelta(days=7 * k),
            digest,
            {"partner_revenue": program},
            {pid: {"won_revenue": value, "deal_count": 2} for pid, value in revenues.items()},
        )
    data = build_digest(store, APP, digest, RUN_AT)
    trailing = data.trailing
    assert trailing is not None and trailing.runs == 2
    assert trailing.program["partner_revenue"] == pytest.approx(350.0)  # (300 + 400) / 2
    assert trailing.program["partner_revenue_share"] == pytest.approx(0.25)  # (.3 + .2) / 2
    assert trailing.program["deal_count"] == pytest.approx(4.0)
    assert trailing.program["active_partners"] is None


# --- the chart --------------------------------------------------------------------------------


def test_the_chart_is_a_real_png_that_is_not_blank(store: Store) -> None:
    seed(store, 40)
    data = build_digest(store, APP, weekly(), RUN_AT)
    assert len(data.weeks) == 12 and data.weeks[-1].start == date(2026, 11, 16)
    assert sum(w.partner for w in data.weeks) > 0 and sum(w.direct for w in data.weeks) > 0
    png = chart_png(data, "USD")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (360, 800)
    rgb = pixels[..., :3]
    assert float(np.std(rgb)) > 0.05  # not one flat colour
    green = (rgb[..., 1] > 0.4) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)
    assert green.sum() > 500  # the partner bars are drawn


def test_the_chart_is_uploaded_into_the_thread_or_falls_back_to_text(store: Store) -> None:
    seed(store, 20)
    data = build_digest(store, APP, weekly(), RUN_AT)
    message, png = render_digest(data, "USD"), chart_png(data, "USD")
    fallback = render_chart_fallback(data, "USD")
    with FakeSlack() as fake:
        client = web_client("xoxb-test", fake.api_url)
        posted = post_digest(client, data.digest, message, png, fallback)
        assert posted.chart == "uploaded"
        (upload,) = fake.files
        assert upload.completed and upload.data == png and upload.channels == ["C0DIGEST"]
        assert upload.thread_ts == posted.ts
        assert (upload.title, upload.alt_txt) == (  # the words of templates/
            "Won revenue per week · weekly",
            "Won revenue per week, partner deals versus direct deals",
        )

        fake.fail_next("upload", error="internal_error", status=500)
        posted = post_digest(client, data.digest, message, png, fallback)
        assert posted.chart == "text"
        (reply,) = [
            c for c in fake.calls_to("chat.postMessage") if c.body.get("thread_ts") == posted.ts
        ]
        assert "could not be uploaded" in reply.body["text"]
        assert "2026-11-16" in json.dumps(reply.body["blocks"])


def test_the_scheduler_posts_text_first_then_the_chart(store: Store) -> None:
    seed(store, 20)
    with FakeSlack() as fake:
        app = AppConfig.model_validate(
            {"digests": [weekly().model_dump()], "scheduler": {"sync": {"schedule": None}}}
        )
        scheduler = DigestScheduler(
            store,
            LoadedConfig(app, None, Path("."), "unused"),
            web_client("xoxb-test", fake.api_url),
            clock=lambda: RUN_AT + timedelta(minutes=1),
        )
        (outcome,) = scheduler.tick()
        assert outcome.action == "sent"
        first, chart = fake.messages_in("C0DIGEST")
        assert first["ts"] == outcome.ts and "Partner digest" in first["text"]
        assert chart["files"][0]["name"] == "digest-weekly.png"
    assert len(trailing_snapshots(store, "last-7d", RUN_AT + timedelta(hours=1))) == 1


# --- commands ---------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        status = 0
    except SystemExit as done:
        status = int(done.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def app_yaml(tmp_path: Path) -> Path:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seed(store, 15)
    store.engine.dispose()
    path = tmp_path / "app.yaml"
    path.write_text(
        "database_url: sqlite:///store.db\n"
        "digests:\n"
        "  - {name: weekly, channel: C0DIGEST, schedule: '0 9 * * mon',"
        " timezone: Europe/Berlin}\n"
        "scheduler: {sync: {schedule: '30 * * * *'}}\n"
    )
    return path


def test_digest_dry_run_prints_json_and_saves_the_chart(
    app_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = app_yaml.parent / "chart.png"
    status, out, err = run(
        capsys,
        "--config",
        str(app_yaml),
        "digest",
        "weekly",
        "--dry-run",
        "--json",
        "--chart",
        str(chart),
        "--as-of",
        "2026-11-23",
    )
    assert status == 0, err
    payload = json.loads(out)
    assert payload["blocks"][0]["type"] == "header" and validate_blocks(payload["blocks"]) is None
    assert chart.read_bytes().startswith(b"\x89PNG")
    # A day in the seeded data's weeks (today's last 7 days may have no deal: nobody ranked).
    status, out, _ = run(
        capsys, "--config", str(app_yaml), "digest", "weekly", "--as-of", "2026-11-23"
    )
    assert status == 0 and "Partner digest · weekly · last-7d\n────" in out
    assert "Top 10 by quality score" in out  # the console's rendering: mrkdwn made readable
    assert "*Top 10" not in out and "&amp;" not in out and "&lt;" not in out


def test_digest_errors_and_jobs(app_yaml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "--config", str(app_yaml), "digest", "monthly")
    assert status == 2 and "no digest is named 'monthly'; the digests are weekly." in err
    status, out, _ = run(capsys, "--config", str(app_yaml), "jobs")
    assert status == 0
    assert "digest:weekly" in out and "Europe/Berlin" in out and "sync" in out
    assert " 09:00 CE" in out  # the next run, in the digest's local time


def test_digest_send_posts_now(
    app_yaml: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeSlack() as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_API_URL", fake.api_url)
        status, out, err = run(capsys, "--config", str(app_yaml), "digest", "weekly", "--send")
        assert status == 0, err
        assert "Posted digest weekly to C0DIGEST with its chart" in out
        assert len(fake.messages_in("C0DIGEST")) == 2
        # The scheduler's delivery path: the post is in the send log, the KPIs in a snapshot.
        ts = fake.messages_in("C0DIGEST")[0]["ts"]  # the digest, then its chart
        store = open_store(f"sqlite:///{app_yaml.parent / 'store.db'}")
        with store.engine.connect() as connection:
            sent = connection.execute(select(schema.send_log)).mappings().all()
        assert [(row["kind"], row["slack_ts"]) for row in sent] == [("digest", ts)]
        assert sent[0]["key"].startswith("digest-manual:weekly:C0DIGEST:")
        assert latest_snapshot(store, "last-7d", datetime.now(UTC) + timedelta(days=1))
        store.engine.dispose()
        fake.add_channel("C0DIGEST", is_member=False)
        status, _, err = run(capsys, "--config", str(app_yaml), "digest", "weekly", "--send")
        assert status == 2 and "not_in_channel" in err and "/invite @partner-kpi" in err


def test_a_digest_into_a_shared_channel_is_refused_unless_mapped(
    app_yaml: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeSlack() as fake:
        fake.add_channel("C0DIGEST", "partners", connected_teams=["T9"])  # Slack Connect
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_API_URL", fake.api_url)
        status, _, err = run(capsys, "--config", str(app_yaml), "digest", "weekly", "--send")
        assert status == 2 and "shared with another organisation" in err
        assert "access.external.channels" in err and "Traceback" not in err
        assert fake.messages_in("C0DIGEST") == [] and fake.files == []
        store = open_store(f"sqlite:///{app_yaml.parent / 'store.db'}")
        entry = store.audit_entries(limit=1)[0]
        assert (entry["user_id"], entry["allowed"]) == ("(scheduler)", False)
        assert entry["request"] == "digest weekly to C0DIGEST"
        # Mapped to one partner, the channel gets that partner alone: no other partner's
        # name, no chart (it shows direct deals), no share of the whole program's revenue.
        with app_yaml.open("a") as config:
            config.write("access: {external: {channels: {C0DIGEST: P0001}}}\n")
        status, _, err = run(capsys, "--config", str(app_yaml), "digest", "weekly", "--send")
        assert status == 0, err
        (posted,) = fake.messages_in("C0DIGEST")
        raw = json.dumps(posted, ensure_ascii=False)
        assert "Partner 0001" in raw and "1 partners chosen" in raw
        others = [p.name for p in store.partners() if p.id != "P0001"]
        assert not [name for name in others if name in raw or escape_mrkdwn(name) in raw]
        assert "revenue share" not in raw.lower() and fake.files == []
        store.engine.dispose()

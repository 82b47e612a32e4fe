"""Cron schedules as crontab(5) reads them (settings/cron.py, bot/schedule.py): the next runs of a
table of expressions, written out by hand, across Berlin's daylight-saving changes of 2026
(clocks jump 02:00 CET -> 03:00 CEST on 29 March and fall back 03:00 CEST -> 02:00 CET on
25 October); errors; and `partner-kpi jobs` naming the weekdays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.schedule import cron_schedule
from settings.cron import CronError, parse_cron

BERLIN = "Europe/Berlin"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (schedule, from (UTC), the next runs in UTC): each comment gives the local Berlin time.
TABLE = [
    (  # Sunday: 0
        "0 9 * * 0",
        "2026-03-20 12:00",
        ["2026-03-22 08:00", "2026-03-29 07:00", "2026-04-05 07:00"],  # 09:00 CET, CEST, CEST
    ),
    (  # Sunday: 7
        "0 9 * * 7",
        "2026-03-20 12:00",
        ["2026-03-22 08:00", "2026-03-29 07:00", "2026-04-05 07:00"],
    ),
    (  # Monday is 1, not Tuesday
        "0 9 * * 1",
        "2026-10-20 12:00",
        ["2026-10-26 08:00", "2026-11-02 08:00", "2026-11-09 08:00"],  # Mondays 09:00 CET
    ),
    (  # weekdays, over the spring weekend
        "0 9 * * 1-5",
        "2026-03-26 12:00",
        ["2026-03-27 08:00", "2026-03-30 07:00", "2026-03-31 07:00", "2026-04-01 07:00"],
    ),
    (  # both day fields restricted: the 1st-7th OR a Tuesday
        "0 9 1-7 * 2",
        "2026-03-24 12:00",  # Tue 24 March 13:00 CET, after that day's run
        [
            "2026-03-31 07:00",  # Tue 31 March (a Tuesday)
            "2026-04-01 07:00",  # Wed 1 April (day 1)
            "2026-04-02 07:00",
            "2026-04-03 07:00",
            "2026-04-04 07:00",
            "2026-04-05 07:00",
            "2026-04-06 07:00",
            "2026-04-07 07:00",  # Tue 7 April (both)
            "2026-04-14 07:00",  # Tue 14 April (a Tuesday)
        ],
    ),
    (  # names, a list and a step in the weekday field: Sun, Tue, Thu, Sat
        "30 8 * * */2",
        "2026-03-27 12:00",  # Fri
        ["2026-03-28 07:30", "2026-03-29 06:30", "2026-03-31 06:30"],
    ),
    (  # every quarter of an hour: the skipped hour does not exist, the repeated one runs twice
        "*/15 * * * *",
        "2026-03-29 00:40",  # 01:40 CET
        ["2026-03-29 00:45", "2026-03-29 01:00", "2026-03-29 01:15"],  # 01:45 CET, 03:00 CEST
    ),
    (
        "*/15 * * * *",
        "2026-10-25 00:40",  # 02:40 CEST
        [
            "2026-10-25 00:45",  # 02:45 CEST
            "2026-10-25 01:00",  # 02:00 CET: the clock went back, the hour runs again
            "2026-10-25 01:15",
        ],
    ),
    (  # a fixed time in the skipped hour runs when the clock jumps past it
        "30 2 * * *",
        "2026-03-28 12:00",
        ["2026-03-29 01:00", "2026-03-30 00:30"],  # 03:00 CEST (02:30 never came), 02:30 CEST
    ),
    (  # a fixed time in the repeated hour runs once
        "30 2 * * *",
        "2026-10-24 12:00",
        ["2026-10-25 00:30", "2026-10-26 01:30"],  # 02:30 CEST, then 02:30 CET next day
    ),
    (  # month and weekday names, any case; the month's first Tuesday
        "0 9 * JAN,apr,Jul,oct tue#1",
        "2026-09-01 00:00",
        ["2026-10-06 07:00", "2027-01-05 08:00", "2027-04-06 07:00"],
    ),
    (  # a day-of-month step: crontab(5) counts a field starting with * as unrestricted (AND)
        "0 12 */10 * mon",
        "2026-06-01 00:00",
        ["2026-06-01 10:00", "2026-08-31 10:00", "2026-09-21 10:00"],  # Mondays on 1/11/21/31
    ),
]


@pytest.mark.parametrize(("schedule", "start", "expected"), TABLE)
def test_next_runs_are_cron_s(schedule: str, start: str, expected: list[str]) -> None:
    trigger = cron_schedule(schedule, BERLIN)
    runs = trigger.next_runs(utc(start), count=len(expected))
    assert [run.astimezone(UTC) for run in runs] == [utc(text) for text in expected]
    assert all(str(run.tzinfo) == BERLIN for run in runs)


def test_a_run_at_the_start_counts_and_new_york_changes_on_its_own_day() -> None:
    trigger = cron_schedule("0 9 * * 0", "America/New_York")
    # US clocks go forward on 8 March 2026: 09:00 EST is 14:00 UTC, 09:00 EDT 13:00 UTC.
    assert trigger.next_runs(utc("2026-03-01 14:00"), 2) == [
        utc("2026-03-01 14:00"),
        utc("2026-03-08 13:00"),
    ]


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("0 9 * *", "use five fields"),
        ("@weekly", "use five fields"),
        ("0 25 * * *", "hour 25 is outside 0-23"),
        ("0 9 * * 8", "weekday 8 is outside 0-7"),
        ("0 9 * * fri-mon", "range 'fri-mon' runs backwards"),
        ("*/0 9 * * *", "step '0' in '*/0' is not a positive number"),
        ("0 9 * * funday", "'funday' is not a weekday"),
        ("0 9 1 * tue#1", "'tue#1' needs '*' as day of month"),
        ("0 9 1,,2 * *", "'' is an empty day of month"),
    ],
)
def test_a_wrong_schedule_is_one_sentence(schedule: str, problem: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(schedule)
    message = str(caught.value)
    assert message.startswith(f"{schedule!r} is not a cron schedule") and problem in message


def test_jobs_lists_the_next_three_runs_with_weekday_names(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        f"source: files\ntimezone: Europe/Berlin\ndatabase_url: sqlite:///{tmp_path / 'k.db'}\n"
        "digests:\n"
        "  - {name: weekly, channel: C0DIGEST, schedule: '0 9 * * 1'}\n"
        "  - {name: sundays, channel: C0DIGEST, schedule: '0 18 * * 0'}\n"
        "scheduler: {sync: {schedule: null}}\n"
        "surveys:\n"
        "  - {name: nps, schedule: '0 9 * 1,4,7,10 tue#1', results_channel: C0RESULTS}\n"
    )
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "app.yaml"), "jobs"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if ":" in line}
    assert rows["digest:weekly"].count("Mon 20") == 3 and "Tue" not in rows["digest:weekly"]
    assert rows["digest:sundays"].count("Sun 20") == 3 and " 18:00 CE" in rows["digest:sundays"]
    assert rows["survey:nps"].count("Tue 20") == 3

"""Cron triggers: tick times (time zones, daylight saving), missed ticks after downtime."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

import tether
from tether.flow.cron import CronTrigger


def _utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def _wait(predicate: Callable[[], object], timeout: float) -> None:
    limit = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < limit, "timed out"
        time.sleep(0.02)


# -- tick arithmetic (no store) -------------------------------------------------------------


def test_ticks_up_to_now_and_the_next_one() -> None:
    cron = CronTrigger("*/15 * * * *")
    ticks = cron.ticks(_utc(2026, 1, 1, 10, 0), _utc(2026, 1, 1, 10, 40))
    assert ticks == [_utc(2026, 1, 1, 10, 15), _utc(2026, 1, 1, 10, 30), _utc(2026, 1, 1, 10, 45)]


def test_skip_missed_keeps_only_the_next_tick() -> None:
    cron = CronTrigger("*/15 * * * *", skip_missed=True)
    assert cron.ticks(_utc(2026, 1, 1, 10, 0), _utc(2026, 1, 1, 12, 5)) == [
        _utc(2026, 1, 1, 12, 15)
    ]


def test_ticks_follow_the_time_zone() -> None:
    cron = CronTrigger("0 9 * * *", tz="Europe/Paris")
    (tick,) = cron.ticks(_utc(2026, 1, 10, 12, 0), _utc(2026, 1, 10, 12, 0))
    local = datetime.fromtimestamp(tick, ZoneInfo("Europe/Paris"))
    assert (local.hour, local.day) == (9, 11)
    assert datetime.fromtimestamp(tick, UTC).hour == 8  # CET is UTC+1 in January


def test_daylight_saving_changes_keep_the_wall_clock_hour() -> None:
    """09:00 in Paris is 08:00 UTC before the spring change and 07:00 UTC after it; each
    day gets exactly one tick, none twice and none skipped."""
    cron = CronTrigger("0 9 * * *", tz="Europe/Paris")
    ticks = cron.ticks(_utc(2026, 3, 27, 12, 0), _utc(2026, 3, 31, 12, 0))
    days = [datetime.fromtimestamp(t, ZoneInfo("Europe/Paris")) for t in ticks]
    assert [(d.day, d.hour) for d in days] == [(28, 9), (29, 9), (30, 9), (31, 9), (1, 9)]
    assert [datetime.fromtimestamp(t, UTC).hour for t in ticks] == [8, 7, 7, 7, 7]


def test_a_bad_expression_or_zone_is_refused() -> None:
    with pytest.raises(tether.ConfigurationError, match="five fields"):
        tether.on_cron("every minute")
    with pytest.raises(tether.ConfigurationError, match="IANA"):
        tether.on_cron("* * * * *", tz="Mars/Olympus")


# -- missed ticks after downtime (both stores) ----------------------------------------------


def _harness(url: str, clock: tether.VirtualClock, skip: bool) -> tether.Harness:
    th = tether.Harness(url, clock=clock)

    @th.function(id="report", trigger=tether.on_cron("*/5 * * * *", skip_missed=skip))
    def report(ctx: tether.SyncContext) -> str:
        return str(ctx.event.data["tick"])

    return th


@pytest.mark.parametrize("skip", [True, False], ids=["skip_missed", "catch_up"])
def test_ticks_missed_while_no_worker_ran(store_url: str, skip: bool) -> None:
    clock = tether.VirtualClock(auto_advance=False)
    clock.advance_to(_utc(2030, 1, 1, 10, 1))
    th = _harness(store_url, clock, skip)
    try:
        with th.worker():  # schedules the 10:05 tick ahead, then stops: downtime
            _wait(lambda: len(th.list_runs("report")) == 1, 10)
        (ahead,) = th.list_runs("report")
        assert ahead.status == "queued"
        clock.advance_to(_utc(2030, 1, 1, 11, 2))  # an hour of downtime: 12 ticks missed
        with th.worker():
            _wait(lambda: th.list_runs("report", status="queued") != [], 10)
            _wait(
                lambda: all(
                    r.status != "queued" or r.input["tick"].startswith("2030-01-01T11:05")  # type: ignore[index]
                    for r in th.list_runs("report", limit=100)
                ),
                20,
            )
        runs = {r.input["tick"][11:16]: r for r in th.list_runs("report", limit=100)}  # type: ignore[index]
        if skip:
            assert runs["10:05"].status == "skipped"
            assert "skip_missed" in (runs["10:05"].reason or "")
            assert sorted(runs) == ["10:05", "11:05"]  # nothing ran for the missed ticks
            assert runs["11:05"].status == "queued"
        else:
            done = [t for t, r in runs.items() if r.status == "completed"]
            assert len(done) == 12  # 10:05 .. 11:00, every missed tick, once
    finally:
        th.close()

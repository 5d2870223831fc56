"""A cron-driven report: every morning at 09:00 UTC, yesterday's orders summed up and sent.

``on_cron`` makes exactly one run per tick however many workers run (the run id is the
tick), and ticks missed while no worker ran are caught up on restart. The report is three
durable steps: gather, sum up, send. ``python examples/cron_report.py`` lets three days go
by on a virtual clock (a few seconds); in production run ``tether worker
examples/cron_report.py`` and the real clock drives it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import tether

CLOCK = tether.VirtualClock(datetime(2030, 1, 1, 8, 0, tzinfo=UTC).timestamp(), auto_advance=False)
th = tether.Harness(
    os.environ.get("TETHER_STORE", "sqlite:///.tether/cron_report.db"),
    clock=CLOCK if __name__ == "__main__" else None,
)
SENT: list[str] = []


def orders_of(day: str) -> list[dict]:
    """The day's orders (a database query in a real app)."""
    n = int(day[-2:])
    return [{"id": f"{day}-{i}", "total": 10.0 * (i + 1)} for i in range(n + 2)]


def send(text: str) -> str:
    SENT.append(text)  # an email or a chat message in a real app
    return text


@th.function(id="daily-report", trigger=tether.on_cron("0 9 * * *", tz="UTC"))
async def daily_report(ctx: tether.Context) -> str:
    tick = datetime.fromisoformat(ctx.event.data["tick"])
    day = (tick - timedelta(days=1)).date().isoformat()
    orders = await ctx.step.run("gather", orders_of, day)
    total = await ctx.step.run("sum-up", lambda: round(sum(o["total"] for o in orders), 2))
    return await ctx.step.run("send", send, f"{day}: {len(orders)} orders, ${total:.2f}")


def wait(predicate: Callable[[], object], what: str) -> None:
    limit = time.monotonic() + 20
    while not predicate():
        if time.monotonic() > limit:
            raise TimeoutError(f"waited 20s for {what}")
        time.sleep(0.05)


def main(days: int = 3) -> None:
    with th.worker():
        wait(lambda: th.list_runs("daily-report"), "the first tick to be scheduled")
        for day in range(days):
            CLOCK.advance(24 * 3600)  # a day goes by
            wait(
                lambda done=day + 1: len(th.list_runs("daily-report", status="completed")) >= done,
                "the report",
            )
    runs = sorted(th.list_runs("daily-report", status="completed", limit=100), key=lambda r: r.id)
    for r in runs:
        print(f"{r.id}: {r.output}")
    print(f"{len(runs)} reports, one per tick")
    th.close()


if __name__ == "__main__":
    main()

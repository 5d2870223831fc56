"""The app the crash, event and sleeper tests run in worker subprocesses.

Workers load it with ``tether worker tests/durable/apps/durable_app.py:th`` (store from
``TETHER_STORE``); the test process builds its own harness on the same functions with
``build(url)``, only to enqueue runs and read them back. ``python durable_app.py send ID``
sends one event, prints ``sent`` and waits to be killed.

Step side effects are counted in files named by the run's input: ``begun`` gets a line
``<step> <pid>`` when a step callable starts, ``effects`` a line ``<step>`` when it is done.
Step ``gate`` blocks until the file ``release`` exists, so a test can kill a worker
exactly in the middle of that step.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import tether

STEPS = 10


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def effect(i: int, data: dict[str, Any]) -> int:
    _append(data["begun"], f"{i} {os.getpid()}")
    if i == data["gate"]:
        while not os.path.exists(data["release"]):
            time.sleep(0.01)
    _append(data["effects"], str(i))
    return i * i


async def effect_async(i: int, data: dict[str, Any]) -> int:
    _append(data["begun"], f"{i} {os.getpid()}")
    if i == data["gate"]:
        while not os.path.exists(data["release"]):
            await asyncio.sleep(0.01)
    _append(data["effects"], str(i))
    return i * i


def ten_steps_sync(ctx: tether.SyncContext) -> dict[str, Any]:
    squares = [ctx.step.run(f"step-{i}", effect, i, ctx.event.data) for i in range(1, STEPS + 1)]
    return {"squares": squares, "total": sum(squares)}


async def ten_steps_async(ctx: tether.Context) -> dict[str, Any]:
    squares = [
        await ctx.step.run(f"step-{i}", effect_async, i, ctx.event.data)
        for i in range(1, STEPS + 1)
    ]
    return {"squares": squares, "total": sum(squares)}


def price(order: dict[str, Any]) -> int:
    return int(order["qty"]) * int(order["unit"])


async def on_order(ctx: tether.Context) -> dict[str, Any]:
    order = ctx.event.data
    total = await ctx.step.run("price", price, order)
    return {"order": order["order"], "total": total}


async def nap(ctx: tether.Context) -> dict[str, Any]:
    seconds = ctx.event.data["seconds"]
    due = ctx.step.now().timestamp() + seconds
    await ctx.step.sleep("nap", seconds)
    return {"n": ctx.event.data["n"], "due": due}


def build(store: str | None = None) -> tether.Harness:
    """A harness on ``store`` (default ``TETHER_STORE``) with the test functions."""
    harness = tether.Harness(store)
    harness.function(id="ten-steps-sync")(ten_steps_sync)
    harness.function(id="ten-steps-async")(ten_steps_async)
    harness.function(id="on-order", trigger=tether.on_event("order.placed"))(on_order)
    harness.function(id="nap", trigger=tether.on_event("nap.requested"))(nap)
    return harness


th = build()


def _send_and_hang(event_id: str) -> None:
    """Send one order event, say so, then wait to be killed (no clean shutdown)."""
    th.send(tether.Event("order.placed", {"order": event_id, "qty": 3, "unit": 7}, id=event_id))
    print("sent", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"]:
        _send_and_hang(sys.argv[2])

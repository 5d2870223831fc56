"""Parallel async steps for the crash test: ``pair`` gathers a step that blocks until the
file ``release`` exists and a step that finishes at once. The worker is killed after the
quick one checkpointed and before the slow one did."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import tether


async def slow(data: dict[str, Any]) -> str:
    while not os.path.exists(data["release"]):
        await asyncio.sleep(0.01)
    return "slow"


def quick(data: dict[str, Any]) -> str:
    with open(data["effects"], "a") as f:
        f.write("quick\n")
    return "quick"


async def pair(ctx: tether.Context) -> list[str]:
    data = ctx.event.data
    results = await asyncio.gather(
        ctx.step.run("slow", slow, data), ctx.step.run("quick", quick, data)
    )
    return list(results)


def build(store: str | None = None) -> tether.Harness:
    th = tether.Harness(store)
    th.function(id="pair")(pair)
    return th


th = build()

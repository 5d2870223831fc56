"""The app of the chaos test: runs of ten steps whose side effects are counted in files.

Every execution of a step callable appends ``begin RUN STEP PID TIME`` to its process's
log when it starts and ``end RUN STEP PID TIME`` when its side effect is done. The side
effect itself goes through a ledger that, like an external API given an idempotency key,
accepts a key once: it creates ``ledger/KEY`` exclusively and logs ``dup`` when the file
was already there (a step re-executed after its first execution finished).
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import tether

STEPS = 10


def _log(folder: str, line: str) -> None:
    with open(os.path.join(folder, f"log-{os.getpid()}.txt"), "a") as f:
        f.write(line + "\n")


async def effect(ctx: tether.Context, i: int, folder: str) -> int:
    key = ctx.step.idempotency_key
    me = f"{ctx.run_id} s{i} {os.getpid()}"
    _log(folder, f"begin {me} {time.time():.6f}")
    await asyncio.sleep(random.uniform(0.005, 0.03))  # the external call
    try:
        os.close(os.open(os.path.join(folder, "ledger", key), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        _log(folder, f"dup {me} {time.time():.6f}")
    _log(folder, f"end {me} {time.time():.6f}")
    return i


async def chaos(ctx: tether.Context) -> int:
    folder = ctx.event.data["folder"]
    return sum([await ctx.step.run(f"s{i}", effect, ctx, i, folder) for i in range(STEPS)])


def build(store: str | None = None) -> tether.Harness:
    harness = tether.Harness(store, lease_ttl=1.0, heartbeat=0.25)
    harness.function(id="chaos")(chaos)
    return harness


th = build()

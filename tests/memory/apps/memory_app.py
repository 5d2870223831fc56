"""The app the memory crash tests run in ``tether worker`` subprocesses (store from
``TETHER_STORE``); the test process builds the same harness with ``build(url)`` to enqueue.

Both functions make four memory writes (add a, add b, update b, delete a), then block in the
``gate`` step until the file ``release`` exists (the test SIGKILLs the worker there), then
add c. A resumed run replays the four writes before the gate: none may apply twice, and the
deleted item must not come back. The embedder is off: replay safety does not depend on it,
and the workers start without loading a model.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import tether


def _gate(data: dict[str, Any]) -> int:
    with open(data["begun"], "a") as f:
        f.write(f"{os.getpid()}\n")
    while not os.path.exists(data["release"]):
        time.sleep(0.01)
    return os.getpid()


async def _agate(data: dict[str, Any]) -> int:
    with open(data["begun"], "a") as f:
        f.write(f"{os.getpid()}\n")
    while not os.path.exists(data["release"]):
        await asyncio.sleep(0.01)
    return os.getpid()


def build(url: str | None = None) -> tether.Harness:
    th = tether.Harness(url or os.environ.get("TETHER_STORE"), embedder=None)

    @th.function(id="remember-sync")
    def remember_sync(ctx: tether.SyncContext) -> dict[str, Any]:
        data = ctx.event.data
        mem = ctx.memory(data["subject"])
        a = mem.add("Prefers the aisle seat", tags=["travel"])
        b = mem.add("Allergic to shellfish")
        b2 = mem.update(b.id, "Allergic to shellfish and peanuts")
        mem.delete(a.id)
        ctx.step.run("gate", _gate, data)
        c = mem.add("Pays in euros")
        return {"a": a.id, "b": b.id, "b2": b2.id, "c": c.id}

    @th.function(id="remember-async")
    async def remember_async(ctx: tether.Context) -> dict[str, Any]:
        data = ctx.event.data
        mem = ctx.memory(data["subject"])
        a = await mem.add("Prefers the aisle seat", tags=["travel"])
        b = await mem.add("Allergic to shellfish")
        b2 = await mem.update(b.id, "Allergic to shellfish and peanuts")
        await mem.delete(a.id)
        await ctx.step.run("gate", _agate, data)
        c = await mem.add("Pays in euros")
        return {"a": a.id, "b": b.id, "b2": b2.id, "c": c.id}

    return th


th = build()

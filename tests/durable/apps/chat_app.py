"""The app of the producer tests: functions with flow controls, run by worker processes
(``tether worker tests/durable/apps/chat_app.py:th``) while a producer process that
registers nothing sends the events.

``reply`` records when its one step started and ended, so a test can check that runs of
one conversation never overlapped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import tether


def work(data: dict[str, Any]) -> dict[str, float]:
    started = time.time()
    time.sleep(float(data.get("seconds", 0.15)))
    return {"start": started, "end": time.time()}


def reply(ctx: tether.SyncContext) -> dict[str, Any]:
    span = ctx.step.run("work", work, ctx.event.data)
    return {"conversation": ctx.event.data["conversation_id"], **span}


def limited(ctx: tether.SyncContext) -> str:
    return "ran"


async def slow(ctx: tether.Context) -> str:
    await ctx.step.run("work", asyncio.sleep, 5)
    return "finished"


async def closing(ctx: tether.Context) -> str:
    await ctx.step.sleep("linger", "1h")
    return "lingered"


def once(ctx: tether.SyncContext) -> str:
    return str(ctx.event.data["email"])


def ticker(ctx: tether.SyncContext) -> None:
    return None


def build(store: str | None = None) -> tether.Harness:
    th = tether.Harness(store)
    th.function(
        id="reply",
        trigger=tether.on_event("user.message"),
        concurrency=tether.Concurrency(limit=1, key="event.data.conversation_id"),
    )(reply)
    th.function(
        id="limited",
        trigger=tether.on_event("ping"),
        rate_limit=tether.RateLimit(1, "1h"),
    )(limited)
    th.function(id="slow", trigger=tether.on_event("slow.requested"), timeout=1)(slow)
    th.function(
        id="closing",
        trigger=tether.on_event("conversation.opened"),
        cancel_on=[tether.cancel_on("conversation.closed", match="data.conversation_id")],
    )(closing)
    th.function(id="once", trigger=tether.on_event("signup"), idempotency="event.data.email")(once)
    th.function(id="ticker", trigger=tether.on_cron("*/5 * * * *"))(ticker)
    th.function(
        id="by-callable",
        trigger=tether.on_event("callable.keyed"),
        concurrency=tether.Concurrency(limit=1, key=lambda event: event.data["k"]),
    )(limited)
    return th


th = build()

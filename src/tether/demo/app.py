"""Ticket triage: the demo app. Plain Python functions made durable by tether.

The classification is a reliable LLM call (``ctx.step.llm``): a primary model with the
real local model (SmolLM2-135M through llama.cpp) as its fallback, structured output
validated against a pydantic model. Run a worker for it with
``tether worker tether.demo.app:th``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

from pydantic import BaseModel

import tether

th = tether.Harness()

PRIMARY = os.environ.get("TETHER_DEMO_MODEL", "local:smollm2-135m")
FALLBACKS = [m for m in os.environ.get("TETHER_DEMO_FALLBACKS", "").split(",") if m]


class Label(BaseModel):
    """What the model must answer: grammar-constrained on llama.cpp, validated everywhere."""

    category: Literal["billing", "outage", "account", "other"]
    priority: Literal["high", "normal", "low"]


SYSTEM = (
    "You triage customer support tickets. Answer with JSON: the category (billing, outage, "
    "account or other) and the priority (high, normal or low)."
)


def lookup_customer(ticket_id: int, attempt: int) -> dict[str, Any]:
    """A flaky CRM call: every third ticket's first attempt fails with a connection error."""
    if ticket_id % 3 == 0 and attempt == 0:
        raise ConnectionError(f"CRM timed out looking up the customer of ticket {ticket_id}")
    return {"customer": f"customer-{ticket_id % 7}", "plan": "pro" if ticket_id % 2 else "free"}


def draft_reply(category: str, plan: str) -> str:
    return f"Thanks for reaching out about {category}; a {plan} specialist is on it."


@th.function(
    id="triage",
    trigger=tether.on_event("ticket.created"),
    retries=tether.Retry(max_attempts=4, initial=0.2, max_delay=1.0),
)
async def triage(ctx: tether.Context) -> dict[str, Any]:
    ticket = ctx.event.data
    resp = await ctx.step.llm(
        "classify",
        model=PRIMARY,
        fallbacks=FALLBACKS,
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": ticket["text"]},
        ],
        output=Label,
        max_tokens=48,
        deadline=120,
    )
    labels = resp.parsed.model_dump()
    customer = await ctx.step.run(
        "lookup-customer", lambda: lookup_customer(ticket["id"], ctx.attempt)
    )
    draft = await ctx.step.run("draft-reply", draft_reply, labels["category"], customer["plan"])
    await ctx.step.sleep("cool-off", 0.5)
    reply = await ctx.step.wait_for_event(
        "customer-reply", event="ticket.replied", match="data.id", timeout=1.5, lookback=60
    )
    await ctx.step.send_event(
        "notify", tether.Event("ticket.triaged", {"id": ticket["id"], **labels})
    )
    return {**labels, **customer, "draft": draft, "replied": reply is not None, "model": resp.model}


def _effect(step: int) -> int:
    """A side effect we can count: one line per execution of a step."""
    time.sleep(0.15)
    with open(os.environ["TETHER_DEMO_EFFECTS"], "a") as f:
        f.write(f"{step}\n")
    return step


@th.function(id="long-task")
def long_task(ctx: tether.SyncContext) -> int:
    return sum(ctx.step.run(f"step-{i}", _effect, i) for i in range(1, 11))


if __name__ == "__main__":
    th.worker(concurrency=4).run()

"""Ticket triage written the way tether's README says: every call is a step."""

import httpx
from pydantic import BaseModel

import tether

th = tether.Harness()


class Category(BaseModel):
    label: str


def fetch_ticket(ticket_id: int) -> dict:
    r = httpx.get(f"https://helpdesk.example/api/tickets/{ticket_id}", timeout=10)
    r.raise_for_status()
    return r.json()


def post_label(ticket_id: int, label: str, key: str) -> None:
    httpx.post(
        f"https://helpdesk.example/api/tickets/{ticket_id}/labels",
        json={"label": label},
        headers={"Idempotency-Key": key},
        timeout=10,
    )


@th.function(
    trigger=tether.on_event("ticket.created"),
    retries=tether.Retry(max_attempts=4, backoff="exponential", initial=1.0, max_delay=60.0),
)
async def classify(ctx: tether.Context) -> str:
    ticket = await ctx.step.run("fetch", fetch_ticket, ctx.event.data["id"])
    resp = await ctx.step.llm(
        "classify",
        model="openai:gpt-4.1-mini",
        messages=[{"role": "user", "content": ticket["text"]}],
        output=Category,
        fallbacks=["anthropic:claude-haiku-4-5", "local:smollm2-135m"],
        max_tokens=256,
        deadline=60,
    )
    await ctx.step.run(
        "label", post_label, ticket["id"], resp.parsed.label, ctx.step.idempotency_key
    )
    await ctx.step.sleep("cool-off", 30)
    return resp.parsed.label

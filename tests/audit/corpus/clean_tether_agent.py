"""A support agent on tether: the conversation lives in a context window, tools run as steps."""

import json

import requests

import tether

th = tether.Harness()


def lookup_order(order_id: str) -> dict:
    r = requests.get(f"https://shop.example/api/orders/{order_id}", timeout=(3.05, 20))
    r.raise_for_status()
    return r.json()


def refund(order_id: str, key: str) -> dict:
    r = requests.post(
        f"https://shop.example/api/orders/{order_id}/refund",
        headers={"Idempotency-Key": key},
        timeout=(3.05, 20),
    )
    return r.json()


TOOLS = {"lookup_order": lookup_order, "refund": refund}
TOOL_SCHEMAS = [{"name": name, "parameters": {"type": "object"}} for name in TOOLS]


@th.function(
    trigger=tether.on_event("user.message"),
    concurrency=tether.Concurrency(limit=1, key="event.data.conversation_id"),
)
async def reply(ctx: tether.Context) -> str:
    d = ctx.event.data
    conv = ctx.context(
        "conversation:" + d["conversation_id"],
        model="openai:gpt-4.1-mini",
        subject="user:" + d["user_id"],
        system="You are a support agent.",
        summarizer="local:smollm2-135m",
    )
    await conv.add("user", d["text"])
    for _turn in range(8):
        resp = await ctx.step.llm(
            "answer", model="openai:gpt-4.1-mini", context=conv, tools=TOOL_SCHEMAS
        )
        if not resp.tool_calls:
            return resp.text
        for call in resp.tool_calls:
            result = await ctx.step.run(f"tool-{call.name}", TOOLS[call.name], **call.arguments)
            await conv.add("tool", json.dumps(result), tool_call_id=call.id)
    return "I could not finish that; a human will follow up."

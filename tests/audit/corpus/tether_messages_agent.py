"""A research agent on tether steps that keeps its own message list (no context window)."""

import httpx

import tether

th = tether.Harness()
TOOL_SCHEMAS = [{"name": "search", "parameters": {"type": "object"}}]


def search(q: str) -> str:
    return httpx.get("https://search.example/api", params={"q": q}, timeout=15).text


@th.function(trigger=tether.on_event("research.requested"))
async def research(ctx: tether.Context) -> str:
    messages = [{"role": "user", "content": ctx.event.data["question"]}]
    for i in range(10):
        resp = await ctx.step.llm(
            f"think-{i}", model="openai:gpt-4.1", messages=messages, tools=TOOL_SCHEMAS
        )
        messages.append({"role": "assistant", "content": resp.text})  # expect: TH201
        if not resp.tool_calls:
            return resp.text
        for call in resp.tool_calls:
            out = await ctx.step.run(f"tool-{call.id}", search, call.arguments["q"])
            messages.append({"role": "tool", "content": out, "tool_call_id": call.id})
    return "no answer"

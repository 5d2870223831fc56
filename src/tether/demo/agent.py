"""A customer-support agent: a think-act-observe loop in plain Python, made durable by tether.

No agent framework: the loop below asks the model what to do (``ctx.step.llm`` with tools),
runs each tool it asks for as a durable step, shows it the result, and repeats until the
model answers. The tools: look up an order, issue a refund (its own run, ``refund``, which
waits for a human's approval above the limit and passes ``ctx.step.idempotency_key`` to the
payments API), ask the policy desk (a sub-agent, ``ctx.step.invoke``), remember a fact and
forget the customer. A new message in a conversation cancels the reply still being written
(``Singleton(mode="cancel")``); a refund is never cancelled with it, being its own run.

The models: ``TETHER_DEMO_HOSTED`` (the demo points it at a FakeLLMServer) with the real local
model as fallback. Run a worker with ``python -m tether.demo.agent`` (or
``tether worker tether.demo.agent:th``) on the store in ``TETHER_STORE``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import tether
from tether.demo import payments
from tether.demo.shop import (
    APPROVAL_LIMIT,
    CHECK_POLICY,
    FORGET_ME,
    ISSUE_REFUND,
    LOOKUP_ORDER,
    ORDERS,
    POLICY,
    POLICY_AGENT_SYSTEM,
    REMEMBER,
    SYSTEM,
    lookup_order,
)
from tether.llm import Tool

HOSTED = os.environ.get("TETHER_DEMO_HOSTED", "local:smollm2-135m")
LOCAL = os.environ.get("TETHER_DEMO_LOCAL", "local:smollm2-135m")
PAYMENTS_URL = os.environ.get("TETHER_DEMO_PAYMENTS", "http://127.0.0.1:9")
MAX_TURNS = 6
#: Small on purpose: the demo's longest conversation outgrows it and is compacted.
WINDOW_BUDGET = int(os.environ.get("TETHER_DEMO_WINDOW_BUDGET", "420"))

#: Memory search by meaning needs the embedding model in every worker (a torch import and
#: a model load: many seconds on a loaded machine); the demo searches memories by their
#: full-text index unless TETHER_DEMO_EMBEDDER names a model (local:all-minilm-l6-v2).
EMBEDDER = os.environ.get("TETHER_DEMO_EMBEDDER") or None
th = tether.Harness(embedder=EMBEDDER)
TOOLS: list[Tool] = [LOOKUP_ORDER, ISSUE_REFUND, CHECK_POLICY, REMEMBER, FORGET_ME]


class Conversation:
    """The conversation as the model sees it: one context window per conversation, with
    the policy pinned, compaction by the hosted model when it outgrows its budget, and the
    customer's long-term memory retrieved into it."""

    def __init__(self, ctx: tether.Context, msg: dict[str, Any]) -> None:
        self.ctx = ctx
        self.msg = msg
        self.reports: list[dict[str, Any]] = []
        self.compactions: list[dict[str, Any]] = []
        self.window = ctx.context(
            f"conversation:{msg['conversation_id']}",
            budget=WINDOW_BUDGET,
            system=SYSTEM,
            subject=msg["subject"],
            memory=True,
            summarizer=HOSTED,
        )

    async def start(self) -> None:
        """The customer's message (and, in a new window, the pinned policy)."""
        if self.msg["message_id"].endswith("#1"):
            await self.window.pin("policy", POLICY)
        await self.window.add("user", self.msg["text"])

    async def think(self) -> Any:
        """One turn of the model: an answer, or tool calls (appended to the window)."""
        built = await self.window.build()
        if not self.reports and built.report.trigger != "none":
            # Too full at the start of a reply: fold the older turns into a summary (never
            # the turn being answered).
            done = await self.window.compact()  # a durable LLM step (the summarizer)
            if done is not None:
                self.compactions.append(
                    {
                        "folded": done.turns_folded,
                        "before": done.tokens_before,
                        "after": done.tokens_after,
                    }
                )
                built = await self.window.build()
        r = built.report
        self.reports.append(
            {
                "budget": r.budget,
                "tokens": r.tokens,
                "retrieved": list(r.retrieved),
                "summarized_through": r.summarized_through,
                # what the summary saves this call: the folded turns, less the summary
                "saved": sum(c["before"] - c["after"] for c in self.compactions),
            }
        )
        return await self.ctx.step.llm(
            "think",
            model=HOSTED,
            fallbacks=[LOCAL] if LOCAL != HOSTED else [],
            tools=TOOLS,
            context=self.window,
            max_tokens=64,
            deadline=90,
        )

    async def observe(self, call: Any, result: Any) -> None:
        """The tool's result, for the model's next turn."""
        await self.window.add("tool", json.dumps(result), tool_call_id=call.id, name=call.name)


@th.function(
    id="support-reply",
    trigger=tether.on_event("customer.message"),
    singleton=tether.Singleton(key="event.data.conversation_id", mode="cancel"),
    retries=tether.Retry(max_attempts=4, initial=0.2, max_delay=1.0),
    subject="event.data.subject",  # the customer's: forgetting them deletes these runs
)
async def support_reply(ctx: tether.Context) -> dict[str, Any]:
    msg = ctx.event.data
    conv = Conversation(ctx, msg)
    await conv.start()
    tools_used: list[str] = []
    reply, model = "Let me hand you over to a colleague.", None
    for _ in range(MAX_TURNS):
        resp = await conv.think()  # think
        if not resp.tool_calls:
            reply, model = resp.text.strip(), resp.model
            break
        for call in resp.tool_calls:
            result = await act(ctx, call.name, call.arguments, msg)  # act
            tools_used.append(call.name)
            await conv.observe(call, result)  # observe
    return {
        "conversation_id": msg["conversation_id"],
        "customer": msg["customer"],
        "reply": reply,
        "model": model,
        "tools": tools_used,
        "windows": conv.reports,
        "compactions": conv.compactions,
    }


async def act(ctx: tether.Context, name: str, args: dict[str, Any], msg: dict[str, Any]) -> Any:
    """Run one tool the model asked for, as durable steps."""
    if name == "lookup_order":
        order_id = str(args.get("order_id", ""))
        return await ctx.step.run("lookup_order", lambda: lookup_order(order_id, ctx.attempt))
    if name == "issue_refund":
        return await issue_refund(ctx, args, msg)
    if name == "check_policy":
        answer = await ctx.step.invoke(
            "policy-desk", function=policy_desk, data={"question": str(args.get("question", ""))}
        )
        return answer
    if name == "remember":
        item = await ctx.memory(msg["subject"]).add(
            str(args.get("fact", "")), source=f"conversation {msg['conversation_id']}"
        )
        return {"remembered": item.text}
    if name == "forget_me":
        await ctx.step.send_event(
            "forget",
            tether.Event("customer.forget", {"customer": msg["customer"], "reply_run": ctx.run_id}),
        )
        return {"forgetting": True}
    return {"error": f"no tool {name!r}"}


async def issue_refund(ctx: tether.Context, args: dict[str, Any], msg: dict[str, Any]) -> Any:
    """Ask for a refund: a run of its own (``refund``), so that a cancelled reply never
    takes a refund waiting for its approval with it. Small refunds are waited for."""
    order_id = str(args.get("order_id", ""))
    order = ORDERS.get(order_id)
    if order is None or order["customer"] != msg["customer"]:
        return {"error": f"order {order_id} is not this customer's"}
    amount = min(float(args.get("amount") or order["total"]), float(order["total"]))
    refund_id = f"R-{order_id}"
    request = {
        "refund_id": refund_id,
        "order_id": order_id,
        "amount": amount,
        "reason": str(args.get("reason", "")),
        "customer": msg["customer"],
    }
    await ctx.step.send_event(
        "refund-request", tether.Event("refund.requested", request, id=f"refund:{refund_id}")
    )
    if amount > APPROVAL_LIMIT:
        return {**request, "status": "waiting for approval"}
    done = await ctx.step.wait_for_event(
        "refund-done",
        event="refund.completed",
        if_=f"async.data.refund_id == '{refund_id}'",
        timeout=120,
        lookback=120,
    )
    if done is None:
        return {**request, "status": "submitted"}
    return {**request, "status": "refunded", "charge_id": done.data["charge_id"]}


def _charge(ctx: tether.Context, r: dict[str, Any]) -> dict[str, Any]:
    return payments.refund(PAYMENTS_URL, r["order_id"], r["amount"], ctx.step.idempotency_key)


@th.function(
    id="refund",
    trigger=tether.on_event("refund.requested"),
    idempotency="event.data.refund_id",
    retries=tether.Retry(max_attempts=4, initial=0.2, max_delay=1.0),
)
async def refund(ctx: tether.Context) -> dict[str, Any]:
    """Issue a refund exactly once; above the limit, only after a human approved it."""
    r = ctx.event.data
    if r["amount"] > APPROVAL_LIMIT:
        approval = await ctx.step.wait_for_event(
            "human-approval", event="refund.approved", match="data.refund_id", timeout="1h"
        )
        if approval is None or not approval.data.get("approved"):
            return {**r, "status": "declined"}
    charge = await ctx.step.run("payments-api", _charge, ctx, r)
    await ctx.step.send_event(
        "refunded", tether.Event("refund.completed", {"refund_id": r["refund_id"], **charge})
    )
    return {**r, "status": "refunded", "charge_id": charge["charge_id"]}


@th.function(id="policy-desk")
async def policy_desk(ctx: tether.Context) -> dict[str, Any]:
    """The sub-agent: answers from the policy, on the hosted model only (no fallback: a
    small model would make the policy up), so its rate limits and errors are retried."""
    resp = await ctx.step.llm(
        "answer",
        model=HOSTED,
        messages=[
            {"role": "system", "content": POLICY_AGENT_SYSTEM},
            {"role": "user", "content": ctx.event.data["question"]},
        ],
        max_tokens=80,
        deadline=60,
    )
    return {"answer": resp.text.strip(), "model": resp.model}


@th.function(id="forget-customer", trigger=tether.on_event("customer.forget"))
async def forget_customer(ctx: tether.Context) -> dict[str, Any]:
    """Forget a customer once the reply that promised it has been delivered: their runs,
    events, windows, memories and preferences (``th.subject(id).forget()``)."""
    data = ctx.event.data

    def forget() -> dict[str, Any]:
        limit = time.monotonic() + 30
        while time.monotonic() < limit and th.get_run(data["reply_run"]).status in (
            "queued",
            "running",
        ):
            time.sleep(0.05)
        return th.subject(f"customer:{data['customer']}").forget().to_dict()

    return {"customer": data["customer"], **await ctx.step.run("forget", forget)}


if __name__ == "__main__":
    th.worker(concurrency=8).run()

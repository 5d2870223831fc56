"""The hosted model of the demo: FakeLLMServer answering with a scripted policy.

A 135M local model cannot be trusted to pick tools, so the "hosted model" is scripted: it
reads the request (the conversation, the tool results so far) and answers what a capable
model would, deterministically. Everything around it is real: the HTTP calls, the faults
FakeLLMServer injects, the retries, the fallback to the local model when it is down. The
demo says which model wrote each answer.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from typing import Any

from tether.demo.shop import APPROVAL_LIMIT, POLICY_AGENT_SYSTEM
from tether.testing import RecordedRequest, Reply

_ORDER = re.compile(r"\b[A-D]-\d{4}\b")


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


class HostedBrain:
    """The default reply of the demo's FakeLLMServer. ``slow(marker, seconds)`` delays the
    final answer of a conversation whose last message contains ``marker`` (a reply that
    is still being written when the customer writes again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slow: dict[str, float] = {}

    def slow(self, marker: str, seconds: float) -> None:
        with self._lock:
            self._slow[marker] = seconds

    def __call__(self, request: RecordedRequest) -> Reply:
        messages: list[dict[str, Any]] = list(request.body.get("messages") or [])
        system = "\n".join(_text(m) for m in messages if m.get("role") == "system")
        if system.startswith(POLICY_AGENT_SYSTEM[:40]):
            return Reply(_policy_answer(_last_user(messages)))
        if system.startswith(SUMMARIZER_START):
            return Reply(json.dumps(_summary(_last_user(messages))))
        tools = {t.get("function", {}).get("name") for t in request.body.get("tools") or []}
        return self._agent_turn(messages, tools, request.prompt)

    def _agent_turn(self, messages: list[dict[str, Any]], tools: set[Any], prompt: str) -> Reply:
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        asked = _text(messages[last]) if last >= 0 else ""
        done = _tool_results(messages[last + 1 :])
        earlier = _tool_results(messages[: max(last, 0)])
        for name, args in _plan(asked, done, earlier):
            if name in tools and name not in done:
                call_id = f"call_{zlib.crc32(f'{prompt}|{name}'.encode()):08x}"
                return Reply("", tool_calls=[{"id": call_id, "name": name, "arguments": args}])
        with self._lock:
            delay = next((s for m, s in self._slow.items() if m in asked), 0.0)
        return Reply(_final(asked, done, earlier, system_memory(messages)), delay=delay)


#: How tether's summarizer prompt begins (tether.context.transcript.SUMMARIZER_PROMPT).
SUMMARIZER_START = "You keep the running summary of a conversation"


def _summary(request: str) -> dict[str, Any]:
    """A structured summary of the folded lines: each line cut to its first words, and
    every term the request says to keep, as written."""
    m = re.search(r"Keep these exactly as written: (.*)$", request, re.M)
    keep = [t.strip() for t in m.group(1).split(",")] if m else []
    folded = request.split("(#n is the message number):", 1)[-1].split("Keep these exactly")[0]
    said = [line.split(":", 1)[-1] for line in folded.splitlines() if " user:" in line]
    orders = sorted(set(_ORDER.findall(folded)))
    refunds = sorted(set(re.findall(r"\bR-[A-D]-\d{4}\b", folded)))
    progress = [f"looked up {', '.join(orders)}"] if orders else []
    waiting = "waiting for approval" in folded
    progress += [
        f"refund {r} requested" + (", waiting for approval" if waiting else "") for r in refunds
    ]
    return {
        "goal": "Help the customer: " + " ".join(" ".join(said).split()[:14]),
        "progress": progress,
        "critical_context": keep,
    }


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


def _tool_results(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """{tool name: parsed result} of the tool calls answered in ``messages``."""
    names: dict[str, str] = {}
    out: dict[str, Any] = {}
    for m in messages:
        for tc in m.get("tool_calls") or []:
            names[tc.get("id", "")] = tc.get("function", {}).get("name", "")
        if m.get("role") == "tool":
            name = names.get(m.get("tool_call_id") or "", m.get("name") or "")
            try:
                out[name] = json.loads(_text(m))
            except ValueError:
                out[name] = _text(m)
    return out


def system_memory(messages: list[dict[str, Any]]) -> str:
    """What the window put in front of the model besides the conversation (pinned facts,
    memories), lowercased."""
    return " ".join(_text(m) for m in messages if m.get("role") == "system").lower()


def _plan(
    asked: str, done: dict[str, Any], earlier: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls a capable model makes for this message, in order."""
    text = asked.lower()
    order = next(iter(_ORDER.findall(asked)), None)
    steps: list[tuple[str, dict[str, Any]]] = []
    if "forget" in text or "delete everything" in text:
        return [("forget_me", {})]
    if order is not None:
        steps.append(("lookup_order", {"order_id": order}))
    if order is not None and "refund" in text:
        found = done.get("lookup_order") or {}
        amount = float(found.get("total", 0.0)) if isinstance(found, dict) else 0.0
        reason = "broken" if "broken" in text else "never arrived" if "never" in text else text
        steps.append(("issue_refund", {"order_id": order, "amount": amount, "reason": reason}))
    if "how long" in text or "when will" in text or "policy" in text:
        steps.append(("check_policy", {"question": asked}))
    fact = _fact(asked)
    if fact:
        steps.append(("remember", {"fact": fact}))
    return steps


def _fact(asked: str) -> str | None:
    """A preference or a change worth keeping: "I prefer ...", "I moved to ..."."""
    m = re.search(r"\b(I prefer [^.!?]+|I(?:'m| am) moving to [^.!?]+|I moved to [^.!?]+)", asked)
    return m.group(1) if m else None


def _final(asked: str, done: dict[str, Any], earlier: dict[str, Any], memory: str) -> str:
    parts: list[str] = []
    order = done.get("lookup_order")
    refund = done.get("issue_refund")
    if isinstance(refund, dict) and refund.get("status") == "refunded":
        parts.append(
            f"I refunded ${refund['amount']:.2f} for order {refund['order_id']} "
            f"(charge {refund.get('charge_id')}); sorry about the {order.get('item') if isinstance(order, dict) else 'order'}."
        )
    elif isinstance(refund, dict):
        parts.append(
            f"Your refund of ${refund['amount']:.2f} for order {refund['order_id']} is over "
            f"${APPROVAL_LIMIT:.0f}, so a colleague approves it first; you will hear from us."
        )
    elif isinstance(order, dict) and order.get("found", True):
        if order.get("tracking"):
            parts.append(
                f"Your {order['item']} ({order['order_id']}) has shipped: tracking "
                f"{order['tracking']}, arriving {order['eta']}."
            )
        else:
            parts.append(f"Your {order['item']} ({order['order_id']}) is {order['status']}.")
    policy = done.get("check_policy")
    if isinstance(policy, dict):
        pending = earlier.get("issue_refund")
        summarized = re.search(
            r"refund (R-[A-D]-\d{4}) requested, waiting for approval", memory, re.I
        )
        if isinstance(pending, dict) and pending.get("status") != "refunded":
            parts.append(f"Your refund {pending['refund_id']} is waiting for approval.")
        elif summarized:  # what the window's summary says of the earlier turns
            parts.append(f"Your refund {summarized.group(1).upper()} is waiting for approval.")
        parts.append(str(policy.get("answer", "")))
    if "forget_me" in done:
        parts.append("Done: everything we kept about you is being deleted.")
    if "remember" in done:
        parts.append("Noted for next time.")
    if "prefer email" in memory and not done:
        parts.append("I will keep you posted by email, as you prefer.")
    return " ".join(parts) or "Happy to help: what can I do for you?"


def _policy_answer(question: str) -> str:
    q = question.lower()
    if "how long" in q or "refund" in q:
        return "Approved refunds reach your card in 3-5 business days."
    return "Our policy: " + POLICY_AGENT_SYSTEM.split("policy only: ", 1)[1]

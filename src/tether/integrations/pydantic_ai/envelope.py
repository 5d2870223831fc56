"""How a model request is checkpointed: in the shape of a ``ctx.step.llm`` response
(``text``, ``tool_calls``, ``usage``, ``model``, ``provider``, ``attempts``...), so the
dashboard and the CLI show it as a chat like a native LLM step, with the messages that led
to it and pydantic-ai's own response kept whole under ``pydantic_ai`` for replay."""

from __future__ import annotations

import time
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest

from tether.integrations.pydantic_ai.model import to_tether_messages

_FINISH = {
    "tool_call": "tool_calls",
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "error": "error",
}


def new_messages(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    """The request's newest turn (the user's prompt, or the tool results that led to this
    request) in tether's neutral message form."""
    if not messages or not isinstance(messages[-1], ModelRequest):
        return []
    return [m.model_dump(mode="json") for m in to_tether_messages([messages[-1]], None)]


def envelope(payload: Any, messages: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """An LLM-response-shaped record around pydantic-ai's JSON ``ModelResponse``."""
    data = payload if isinstance(payload, dict) else {}
    parts = data.get("parts") or []
    text = "".join(p.get("content", "") for p in parts if p.get("part_kind") == "text")
    calls = [
        {"id": p.get("tool_call_id") or "", "name": p.get("tool_name"), "arguments": _args(p)}
        for p in parts
        if p.get("part_kind") == "tool-call"
    ]
    u = data.get("usage") or {}
    usage = {
        "input_tokens": u.get("input_tokens", 0),
        "cached_input_tokens": u.get("cache_read_tokens", 0),
        "cache_write_tokens": u.get("cache_write_tokens", 0),
        "output_tokens": u.get("output_tokens", 0),
        "reasoning_tokens": (u.get("details") or {}).get("reasoning_tokens", 0),
    }
    details = (data.get("provider_details") or {}).get("tether") or {}
    provider = details.get("provider") or data.get("provider_name") or "unknown"
    model = details.get("model") or f"{provider}:{data.get('model_name') or 'unknown'}"
    attempts = details.get("attempts") or [
        {
            "number": 1,
            "model": model,
            "provider": provider,
            "started_at": started,
            "duration_s": round(time.time() - started, 6),
            "ok": True,
            "usage": usage,
            "cost_usd": None,
        }
    ]
    return {
        "text": text,
        "tool_calls": calls,
        "usage": usage,
        "cost_usd": details.get("cost_usd"),
        "model": model,
        "provider": provider,
        "finish_reason": _FINISH.get(data.get("finish_reason") or "", "stop"),
        "attempts": attempts,
        "messages": messages,
        "pydantic_ai": payload,
    }


def _args(part: dict[str, Any]) -> Any:
    import json

    args = part.get("args")
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return {"_raw": args}
    return args or {}


__all__ = ["envelope", "new_messages"]

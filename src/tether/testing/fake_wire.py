"""How FakeLLMServer writes replies and faults in each wire format.

Each ``render_*`` function returns what goes on the wire: a status, headers and either one
JSON body or a list of SSE events (``(event_name_or_None, data)``; data ``None`` means "drop
the connection here").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

Wire = str  # "chat" | "responses" | "anthropic" | "gemini" | "openai-embed" | "gemini-embed"


@dataclass
class Reply:
    """A scripted reply. ``text`` is the assistant's text; ``tool_calls`` are
    ``{"name": ..., "arguments": dict | raw JSON string}`` (with an optional ``"id"``: the
    Chat Completions wire uses it, else ``call_<i>``); ``usage`` keys are tether's
    (``input_tokens``, ``output_tokens``, ``cached_input_tokens``, ``cache_write_tokens``,
    ``reasoning_tokens``); ``delay`` seconds before the reply starts."""

    text: str = "Hello from FakeLLMServer."
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] | None = None
    finish_reason: str | None = None
    delay: float = 0.0


@dataclass
class Fault:
    """A scripted failure; ``kind`` is one of ``FAULT_KINDS``."""

    kind: str
    retry_after: float | None = None
    retry_after_ms: int | None = None
    retry_after_date: bool = False
    hang: float = 30.0
    prompt_tokens: int = 250_000
    context_window: int = 200_000


FAULT_KINDS = (
    "rate_limit",  # 429 with Retry-After (or retry-after-ms / Gemini RetryInfo)
    "quota",  # 429 insufficient_quota / 402 billing_error / Gemini per-day quota
    "server_error",  # 500
    "unavailable",  # 503
    "overloaded",  # 529 on the Anthropic wire, 503 elsewhere
    "timeout",  # 504
    "hang",  # no reply for `hang` seconds, then the normal reply
    "truncated_body",  # 200 whose JSON body is cut in half
    "truncated_json",  # 200 whose text is a JSON document cut in half
    "context_length",  # the provider's context-length error
    "invalid_tool_json",  # a tool call whose arguments are not valid JSON
    "mid_stream_overload",  # a stream that fails after its first tokens
    "content_filter",  # a 200 reply blocked by the provider's safety filter
    "auth",  # 401
    "bad_request",  # 400
)


def default_usage(text: str, prompt_chars: int) -> dict[str, int]:
    return {"input_tokens": max(1, prompt_chars // 4), "output_tokens": max(1, len(text) // 4)}


# ---------------------------------------------------------------- errors


def _retry_headers(f: Fault) -> dict[str, str]:
    headers: dict[str, str] = {}
    if f.retry_after_ms is not None:
        headers["retry-after-ms"] = str(f.retry_after_ms)
    if f.retry_after is not None:
        if f.retry_after_date:
            headers["Retry-After"] = time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + f.retry_after)
            )
        else:
            headers["Retry-After"] = str(
                int(f.retry_after) if float(f.retry_after).is_integer() else f.retry_after
            )
    return headers


_OPENAI_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "rate_limit": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    "quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "server_error": (
        500,
        "server_error",
        None,
        "The server had an error while processing your request.",
    ),
    "unavailable": (503, "server_error", None, "The server is overloaded or not ready yet."),
    "overloaded": (503, "server_error", None, "The server is overloaded or not ready yet."),
    "timeout": (504, "server_error", None, "Gateway timeout."),
    "auth": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "bad_request": (400, "invalid_request_error", None, "Invalid value for 'messages'."),
}

_ANTHROPIC_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your rate limit.",
    ),
    "quota": (402, "billing_error", "Your credit balance is too low."),
    "server_error": (500, "api_error", "Internal server error"),
    "unavailable": (529, "overloaded_error", "Overloaded"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "timeout": (504, "timeout_error", "Request timed out"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "bad_request": (400, "invalid_request_error", "messages: field required"),
}

_GEMINI_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "quota": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota."),
    "server_error": (500, "INTERNAL", "An internal error has occurred."),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "timeout": (504, "DEADLINE_EXCEEDED", "Deadline exceeded."),
    "auth": (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
    "bad_request": (400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
}


def render_error(wire: Wire, f: Fault) -> tuple[int, dict[str, str], Any]:
    """An HTTP error reply for ``f`` in ``wire``'s format."""
    headers = _retry_headers(f)
    if wire == "anthropic":
        if f.kind == "context_length":
            msg = f"prompt is too long: {f.prompt_tokens} tokens > {f.context_window} maximum"
            return (
                400,
                headers,
                {"type": "error", "error": {"type": "invalid_request_error", "message": msg}},
            )
        status, etype, msg = _ANTHROPIC_ERRORS[f.kind]
        return status, headers, {"type": "error", "error": {"type": etype, "message": msg}}
    if wire.startswith("gemini"):
        if f.kind == "context_length":
            msg = (
                f"The input token count ({f.prompt_tokens}) exceeds the maximum number of "
                f"tokens allowed ({f.context_window})."
            )
            return 400, {}, {"error": {"code": 400, "message": msg, "status": "INVALID_ARGUMENT"}}
        status, gstatus, msg = _GEMINI_ERRORS[f.kind]
        details: list[dict[str, Any]] = []
        if f.kind == "quota":
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}
                    ],
                }
            )
        delay = (
            f.retry_after if f.retry_after is not None else (f.retry_after_ms or 0) / 1000 or None
        )
        if delay is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay:g}s"}
            )
            headers = {}
        body = {"error": {"code": status, "message": msg, "status": gstatus, "details": details}}
        return status, headers, body
    if f.kind == "context_length":
        msg = (
            f"This model's maximum context length is {f.context_window} tokens. However, your "
            f"messages resulted in {f.prompt_tokens} tokens. Please reduce the length of the messages."
        )
        err = {
            "message": msg,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
        return 400, headers, {"error": err}
    status, etype, code, msg = _OPENAI_ERRORS[f.kind]
    return status, headers, {"error": {"message": msg, "type": etype, "param": None, "code": code}}


def stream_error_event(wire: Wire) -> tuple[str | None, Any]:
    """The event a stream sends when it fails after its first tokens."""
    if wire == "anthropic":
        return "error", {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        }
    if wire == "chat":
        return None, {
            "error": {"message": "The server is overloaded.", "type": "server_error", "code": None}
        }
    if wire == "responses":
        return "error", {
            "type": "error",
            "code": "server_error",
            "message": "The server is overloaded.",
            "sequence_number": 99,
        }
    return None, None  # Gemini: the connection just drops


# ---------------------------------------------------------------- successful replies


def _args_string(tc: dict[str, Any]) -> str:
    a = tc.get("arguments", {})
    return a if isinstance(a, str) else json.dumps(a)


def _args_object(tc: dict[str, Any]) -> Any:
    a = tc.get("arguments", {})
    if isinstance(a, str):
        try:
            return json.loads(a)
        except ValueError:
            return a
    return a


def render_reply(wire: Wire, model: str, r: Reply, u: dict[str, int]) -> dict[str, Any]:
    if wire == "chat":
        return _chat(model, r, u)
    if wire == "responses":
        return _responses(model, r, u)
    if wire == "anthropic":
        return _anthropic(model, r, u)
    return _gemini(model, r, u)


def _chat_usage(u: dict[str, int]) -> dict[str, Any]:
    return {
        "prompt_tokens": u.get("input_tokens", 0),
        "completion_tokens": u.get("output_tokens", 0),
        "total_tokens": u.get("input_tokens", 0) + u.get("output_tokens", 0),
        "prompt_tokens_details": {"cached_tokens": u.get("cached_input_tokens", 0)},
        "completion_tokens_details": {"reasoning_tokens": u.get("reasoning_tokens", 0)},
    }


def _chat(model: str, r: Reply, u: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": r.text if r.text or not r.tool_calls else None,
    }
    if r.tool_calls:
        message["tool_calls"] = [
            {
                "id": tc.get("id") or f"call_{i}",
                "type": "function",
                "function": {"name": tc["name"], "arguments": _args_string(tc)},
            }
            for i, tc in enumerate(r.tool_calls)
        ]
    finish = r.finish_reason or ("tool_calls" if r.tool_calls else "stop")
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _chat_usage(u),
    }


def _responses_usage(u: dict[str, int]) -> dict[str, Any]:
    return {
        "input_tokens": u.get("input_tokens", 0),
        "input_tokens_details": {"cached_tokens": u.get("cached_input_tokens", 0)},
        "output_tokens": u.get("output_tokens", 0),
        "output_tokens_details": {"reasoning_tokens": u.get("reasoning_tokens", 0)},
        "total_tokens": u.get("input_tokens", 0) + u.get("output_tokens", 0),
    }


def _responses(model: str, r: Reply, u: dict[str, int]) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if r.text:
        output.append(
            {
                "type": "message",
                "id": "msg_fake",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": r.text, "annotations": []}],
            }
        )
    for i, tc in enumerate(r.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{i}",
                "call_id": f"call_{i}",
                "name": tc["name"],
                "arguments": _args_string(tc),
                "status": "completed",
            }
        )
    incomplete = None
    status = "completed"
    if r.finish_reason in ("length", "max_output_tokens", "content_filter"):
        status = "incomplete"
        incomplete = {
            "reason": "max_output_tokens"
            if r.finish_reason != "content_filter"
            else "content_filter"
        }
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _responses_usage(u),
    }


def _anthropic(model: str, r: Reply, u: dict[str, int]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if r.text:
        content.append({"type": "text", "text": r.text})
    for i, tc in enumerate(r.tool_calls):
        content.append(
            {"type": "tool_use", "id": f"toolu_{i}", "name": tc["name"], "input": _args_object(tc)}
        )
    stop = r.finish_reason or ("tool_use" if r.tool_calls else "end_turn")
    cached = u.get("cached_input_tokens", 0)
    written = u.get("cache_write_tokens", 0)
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": u.get("input_tokens", 0) - cached - written,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": written,
            "output_tokens": u.get("output_tokens", 0),
        },
    }


def _gemini_usage(u: dict[str, int]) -> dict[str, Any]:
    reasoning = u.get("reasoning_tokens", 0)
    out = u.get("output_tokens", 0) - reasoning
    return {
        "promptTokenCount": u.get("input_tokens", 0),
        "candidatesTokenCount": out,
        "cachedContentTokenCount": u.get("cached_input_tokens", 0),
        "thoughtsTokenCount": reasoning,
        "totalTokenCount": u.get("input_tokens", 0) + u.get("output_tokens", 0),
    }


def _gemini(model: str, r: Reply, u: dict[str, int]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if r.text:
        parts.append({"text": r.text})
    for tc in r.tool_calls:
        parts.append({"functionCall": {"name": tc["name"], "args": _args_object(tc)}})
    finish = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}.get(
        r.finish_reason or "stop", (r.finish_reason or "STOP").upper()
    )
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": _gemini_usage(u),
        "modelVersion": model,
    }


# ---------------------------------------------------------------- streams


def _pieces(text: str, n: int = 4) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


def render_stream(
    wire: Wire, model: str, r: Reply, u: dict[str, int], fail_after: int | None = None
) -> list[tuple[str | None, Any]]:
    """SSE events for a streamed reply; with ``fail_after=n`` the stream fails after n text pieces."""
    pieces = _pieces(r.text)
    if fail_after is not None:
        pieces = pieces[: max(1, fail_after)] or ["partial"]
    if wire == "chat":
        events = _chat_stream(model, r, u, pieces)
    elif wire == "responses":
        events = _responses_stream(model, r, u, pieces)
    elif wire == "anthropic":
        events = _anthropic_stream(model, r, u, pieces)
    else:
        events = _gemini_stream(model, r, u, pieces)
    if fail_after is None:
        return events
    head = events[: _head_len(wire, len(pieces))]
    return [*head, stream_error_event(wire)]


def _head_len(wire: Wire, n: int) -> int:
    return {"chat": n, "responses": 1 + n, "anthropic": 2 + n, "gemini": n}[wire]


def _chat_stream(
    model: str, r: Reply, u: dict[str, int], pieces: list[str]
) -> list[tuple[str | None, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events: list[tuple[str | None, Any]] = [
        (None, chunk({"role": "assistant", "content": p})) for p in pieces
    ]
    for i, tc in enumerate(r.tool_calls):
        fn = {"name": tc["name"], "arguments": _args_string(tc)}
        events.append(
            (
                None,
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": tc.get("id") or f"call_{i}",
                                "type": "function",
                                "function": fn,
                            }
                        ]
                    }
                ),
            )
        )
    finish = r.finish_reason or ("tool_calls" if r.tool_calls else "stop")
    events.append((None, chunk({}, finish)))
    usage_chunk = chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = _chat_usage(u)
    events.append((None, usage_chunk))
    events.append((None, "[DONE]"))
    return events


def _responses_stream(
    model: str, r: Reply, u: dict[str, int], pieces: list[str]
) -> list[tuple[str | None, Any]]:
    final = _responses(model, r, u)
    seq = iter(range(10_000))
    events: list[tuple[str | None, Any]] = [
        (
            "response.created",
            {
                "type": "response.created",
                "sequence_number": next(seq),
                "response": {**final, "status": "in_progress", "output": []},
            },
        )
    ]
    for p in pieces:
        events.append(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    "item_id": "msg_fake",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": p,
                },
            )
        )
    for i, item in enumerate(final["output"]):
        events.append(
            (
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(seq),
                    "output_index": i,
                    "item": item,
                },
            )
        )
    events.append(
        (
            "response.completed",
            {"type": "response.completed", "sequence_number": next(seq), "response": final},
        )
    )
    return events


def _anthropic_stream(
    model: str, r: Reply, u: dict[str, int], pieces: list[str]
) -> list[tuple[str | None, Any]]:
    final = _anthropic(model, r, u)
    start = {
        **final,
        "content": [],
        "stop_reason": None,
        "usage": {**final["usage"], "output_tokens": 1},
    }
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    for p in pieces:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    for i, tc in enumerate(r.tool_calls, start=1):
        block = {"type": "tool_use", "id": f"toolu_{i}", "name": tc["name"], "input": {}}
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": block},
            )
        )
        delta = {"type": "input_json_delta", "partial_json": _args_string(tc)}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta})
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": final["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": final["usage"]["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _gemini_stream(
    model: str, r: Reply, u: dict[str, int], pieces: list[str]
) -> list[tuple[str | None, Any]]:
    final = _gemini(model, r, u)
    events: list[tuple[str | None, Any]] = []
    for p in pieces:
        events.append(
            (
                None,
                {
                    "candidates": [
                        {"content": {"role": "model", "parts": [{"text": p}]}, "index": 0}
                    ],
                    "modelVersion": model,
                },
            )
        )
    tool_parts = [p for p in final["candidates"][0]["content"]["parts"] if "functionCall" in p]
    last = {
        "candidates": [
            {
                "content": {"role": "model", "parts": tool_parts},
                "finishReason": final["candidates"][0]["finishReason"],
                "index": 0,
            }
        ],
        "usageMetadata": final["usageMetadata"],
        "modelVersion": model,
    }
    events.append((None, last))
    return events

"""The provider-neutral records of an LLM call: messages, tool calls, usage, attempts, response.

Every record is a pydantic model that survives ``model_dump(mode="json")`` and
``model_validate``, so a response can be checkpointed as a durable step result.
"""

from __future__ import annotations

import json
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "unknown"]


class ToolCall(BaseModel):
    """A call the model asked for: ``arguments`` is already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One chat message, in tether's neutral form (close to OpenAI Chat Completions)."""

    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class Tool(BaseModel):
    """A function the model may call; ``parameters`` is a JSON schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    """Tokens of one attempt (or the sum over attempts), normalised across providers.

    ``input_tokens`` counts every prompt token, cached and cache-written ones included
    (Anthropic's separate fields are added up); ``output_tokens`` includes reasoning tokens.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class AttemptRecord(BaseModel):
    """One request sent to one model, successful or not (failed attempts are billed too)."""

    number: int
    model: str
    provider: str
    started_at: float
    duration_s: float
    ok: bool
    error_class: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    status: int | None = None
    action: str | None = None
    retry_after_s: float | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    # What the run audit reads (``tether audit runs``): the seconds this call waited before
    # this attempt, by reason -- ``backoff`` (tether's own, after a failure), ``retry_after``
    # (the server's delay), ``hold`` (a rate-limit hold another call's 429 set), ``circuit``
    # (an open or probing circuit); whether the attempt went to a fallback (not the chain's
    # first model); whether this failure opened the model's circuit.
    waits: dict[str, float] = Field(default_factory=dict)
    fallback: bool = False
    circuit_opened: bool = False


class LLMResponse(BaseModel, Generic[T]):
    """The result of one logical call.

    ``usage`` and ``cost_usd`` are the totals over every attempt of the call (failed attempts
    and re-asks included: that is what was paid); each entry of ``attempts`` has its own.
    ``parsed`` is the validated ``output`` model. After a JSON round trip, rebuild it with
    ``LLMResponse[Model].model_validate(data)``.
    """

    text: str = ""
    parsed: T | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    model: str
    provider: str
    finish_reason: FinishReason = "stop"
    attempts: list[AttemptRecord] = Field(default_factory=list)


def restore(data: dict[str, Any], output: type[BaseModel] | None = None) -> LLMResponse[Any]:
    """Rebuild a checkpointed response (``resp.model_dump(mode="json")``); with the call's
    ``output`` model, ``parsed`` comes back as an instance of it."""
    if output is None:
        return LLMResponse[Any].model_validate(data)
    return LLMResponse[output].model_validate(data)  # type: ignore[valid-type]


class Embedding(BaseModel):
    """The result of one ``embed`` call: one vector per input, in order."""

    vectors: list[list[float]]
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    model: str
    provider: str
    attempts: list[AttemptRecord] = Field(default_factory=list)


class StreamChunk(BaseModel):
    """A piece of a streamed reply: text, or a completed tool call."""

    text: str = ""
    tool_call: ToolCall | None = None


# ---------------------------------------------------------------- normalising user input


def to_messages(messages: Any) -> list[Message]:
    """Accept a string, OpenAI-style dicts, or ``Message`` objects."""
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    out: list[Message] = []
    for m in messages:
        if isinstance(m, Message):
            out.append(m)
            continue
        if not isinstance(m, dict):
            raise TypeError(
                f"a message must be a dict or tether.llm.Message, got {type(m).__name__}"
            )
        d = dict(m)
        content = d.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            d["content"] = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        elif content is None:
            d["content"] = ""
        d["tool_calls"] = [_to_tool_call(tc) for tc in d.get("tool_calls") or []]
        out.append(Message.model_validate(d))
    return out


def _to_tool_call(tc: Any) -> ToolCall:
    if isinstance(tc, ToolCall):
        return tc
    if "function" in tc:  # OpenAI shape: arguments is a JSON string
        fn = tc["function"]
        args = fn.get("arguments") or "{}"
        return ToolCall(
            id=tc.get("id", ""),
            name=fn["name"],
            arguments=json.loads(args) if isinstance(args, str) else args,
        )
    return ToolCall.model_validate(tc)


def to_tools(tools: Any) -> list[Tool]:
    """Accept ``Tool`` objects, OpenAI ``{"type": "function", "function": {...}}`` dicts,
    plain ``{"name", "description", "parameters"}`` dicts, or pydantic model classes."""
    out: list[Tool] = []
    for t in tools or []:
        if isinstance(t, Tool):
            out.append(t)
        elif isinstance(t, type) and issubclass(t, BaseModel):
            out.append(
                Tool(
                    name=t.__name__,
                    description=(t.__doc__ or "").strip(),
                    parameters=t.model_json_schema(),
                )
            )
        elif isinstance(t, dict) and "function" in t:
            out.append(Tool.model_validate(t["function"]))
        elif isinstance(t, dict):
            out.append(Tool.model_validate(t))
        else:
            raise TypeError(
                f"cannot use {t!r} as a tool: pass a dict, tether.llm.Tool or a pydantic model"
            )
    return out

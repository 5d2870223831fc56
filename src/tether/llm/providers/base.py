"""The provider interface every wire adapter implements, and what flows through it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tether.errors import MissingAPIKey, MissingExtra
from tether.llm.types import FinishReason, Message, Tool, ToolCall, Usage

C = TypeVar("C")


@dataclass
class Request:
    """One attempt's request, in tether's neutral form."""

    messages: list[Message]
    tools: list[Tool] = field(default_factory=list)
    schema: dict[str, Any] | None = None  # JSON schema of the structured output
    schema_name: str = "output"
    max_tokens: int | None = None
    temperature: float | None = None
    options: dict[str, Any] = field(default_factory=dict)  # passed through to the SDK call


@dataclass
class Result:
    """One successful reply. ``bad_tool_calls`` names tool calls whose arguments were not
    valid JSON (their ``arguments`` are left empty): the call loop re-asks."""

    text: str
    usage: Usage
    finish_reason: FinishReason
    raw_finish: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    bad_tool_calls: list[str] = field(default_factory=list)
    model: str | None = None


@dataclass
class Delta:
    """A streamed piece: text, a finished tool call, or (last) the whole ``result``."""

    text: str = ""
    tool_call: ToolCall | None = None
    result: Result | None = None


class Provider(ABC):
    """One model behind one wire API. Subclasses are small: they translate, nothing more.

    Retries, fallbacks, circuit breaking, deadlines and cost are the call loop's job; an
    adapter makes exactly one request per method call and raises ``ProviderError`` with a
    classification when it fails.
    """

    #: prefix of the model string ("openai", "anthropic", ...)
    provider: str = ""
    #: the provider name prices are listed under
    price_provider: str = ""

    def __init__(self, model: str) -> None:
        self.model = model

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}"

    @abstractmethod
    async def complete(self, request: Request, timeout: float) -> Result: ...

    @abstractmethod
    def stream(self, request: Request, timeout: float) -> AsyncIterator[Delta]: ...

    async def embed(self, inputs: list[str], timeout: float) -> tuple[list[list[float]], Usage]:
        from tether.errors import ConfigurationError

        raise ConfigurationError(f"{self.key} does not provide embeddings")


# ---------------------------------------------------------------- helpers for adapters


def require(module: str, provider: str, extra: str) -> None:
    """Fail with the exact pip line when an optional SDK is missing."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(provider, extra, module)


def api_key(provider: str, explicit: str | None, *env_vars: str) -> str:
    if explicit:
        return explicit
    for name in env_vars:
        value = os.environ.get(name)
        if value:
            return value
    raise MissingAPIKey(provider, env_vars)


def env_first(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


def client_for_loop(key: tuple[Any, ...], make: Callable[[], C]) -> C:
    """One SDK client per event loop and configuration: async HTTP pools belong to a loop."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = make()
    return client


def parse_arguments(raw: Any) -> dict[str, Any] | None:
    """Tool-call arguments as a dict, or None when they are not a JSON object."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def finish_from(raw: str | None, mapping: dict[str, FinishReason]) -> FinishReason:
    if raw is None:
        return "stop"
    return mapping.get(raw, mapping.get(raw.lower(), "unknown"))


#: Seconds to open a connection: an unreachable endpoint fails fast, whatever the timeout.
CONNECT_TIMEOUT = 5.0


def sdk_timeout(sdk: Any, timeout: float) -> Any:
    """The per-request timeout for a Stainless SDK (openai, anthropic): the attempt's
    timeout for reading, ``CONNECT_TIMEOUT`` at most for connecting."""
    return sdk.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))


async def with_timeout(coro: Any, timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        return await coro

"""Anthropic Messages API (``anthropic:<model>``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tether.errors import ProviderError
from tether.llm.providers.base import (
    Delta,
    Provider,
    Request,
    Result,
    client_for_loop,
    env_first,
    finish_from,
    parse_arguments,
    require,
    sdk_timeout,
    with_timeout,
)
from tether.llm.providers.base import api_key as find_api_key
from tether.llm.providers.sdk_errors import classify_stainless, provider_error
from tether.llm.types import FinishReason, Message, ToolCall, Usage

#: Anthropic requires max_tokens; this is used when the caller gives none.
DEFAULT_MAX_TOKENS = 4096

FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages): system messages are joined; tool results become
    ``tool_result`` blocks of a user turn, consecutive ones merged."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content,
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return system, out


def anthropic_usage(u: Any) -> Usage:
    """Anthropic's ``input_tokens`` excludes cache reads and writes: add them back."""
    if u is None:
        return Usage()
    cached = getattr(u, "cache_read_input_tokens", None) or 0
    written = getattr(u, "cache_creation_input_tokens", None) or 0
    details = getattr(u, "output_tokens_details", None)
    thinking = (getattr(details, "thinking_tokens", None) or 0) if details is not None else 0
    return Usage(
        input_tokens=(getattr(u, "input_tokens", None) or 0) + cached + written,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=getattr(u, "output_tokens", None) or 0,
        reasoning_tokens=thinking,
    )


class Anthropic(Provider):
    provider = "anthropic"
    price_provider = "anthropic"

    def __init__(
        self, model: str, *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        super().__init__(model)
        require("anthropic", "anthropic", "anthropic")
        self.base_url = base_url or env_first("ANTHROPIC_BASE_URL")
        self.api_key = find_api_key("anthropic", api_key, "ANTHROPIC_API_KEY")

    def _client(self) -> Any:
        def make() -> Any:
            import anthropic

            return anthropic.AsyncAnthropic(
                api_key=self.api_key, base_url=self.base_url, max_retries=0
            )

        return client_for_loop(("anthropic", self.base_url, self.api_key), make)

    def _timeout(self, timeout: float) -> Any:
        import anthropic

        return sdk_timeout(anthropic, timeout)

    def _params(self, req: Request) -> dict[str, Any]:
        system, messages = anthropic_messages(req.messages)
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            params["system"] = system
        if req.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in req.tools
            ]
        if req.schema is not None:
            params["output_config"] = {"format": {"type": "json_schema", "schema": req.schema}}
        if req.temperature is not None:
            params["temperature"] = req.temperature
        params.update(req.options)
        return params

    async def complete(self, request: Request, timeout: float) -> Result:
        client = self._client()
        try:
            resp = await with_timeout(
                client.messages.create(**self._params(request), timeout=self._timeout(timeout)),
                timeout,
            )
        except Exception as exc:
            raise provider_error(exc, classify_stainless) from exc
        text: list[str] = []
        calls: list[ToolCall] = []
        bad: list[str] = []
        for block in resp.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                args = parse_arguments(block.input)
                if args is None:
                    bad.append(block.name)
                calls.append(ToolCall(id=block.id, name=block.name, arguments=args or {}))
        return Result(
            text="".join(text),
            usage=anthropic_usage(resp.usage),
            finish_reason=finish_from(resp.stop_reason, FINISH),
            raw_finish=resp.stop_reason,
            tool_calls=calls,
            bad_tool_calls=bad,
            model=resp.model,
        )

    async def stream(self, request: Request, timeout: float) -> AsyncIterator[Delta]:
        client = self._client()
        text: list[str] = []
        blocks: dict[int, list[str]] = {}  # index -> [id, name, partial json]
        usage: Any = None
        output_tokens = 0
        stop: str | None = None
        model: str | None = None
        try:
            stream = await with_timeout(
                client.messages.create(
                    **self._params(request), stream=True, timeout=self._timeout(timeout)
                ),
                timeout,
            )
            iterator = stream.__aiter__()
            while True:
                try:
                    event = await with_timeout(iterator.__anext__(), timeout)
                except StopAsyncIteration:
                    break
                kind = event.type
                if kind == "message_start":
                    usage, model = event.message.usage, event.message.model
                elif kind == "content_block_start" and event.content_block.type == "tool_use":
                    blocks[event.index] = [event.content_block.id, event.content_block.name, ""]
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        text.append(delta.text)
                        yield Delta(text=delta.text)
                    elif delta.type == "input_json_delta" and event.index in blocks:
                        blocks[event.index][2] += delta.partial_json
                elif kind == "message_delta":
                    stop = event.delta.stop_reason or stop
                    output_tokens = getattr(event.usage, "output_tokens", 0) or output_tokens
        except ProviderError:
            raise
        except Exception as exc:
            raise provider_error(exc, classify_stainless, "".join(text)) from exc
        calls: list[ToolCall] = []
        bad: list[str] = []
        for _, (call_id, name, raw) in sorted(blocks.items()):
            args = parse_arguments(raw or "{}")
            if args is None:
                bad.append(name)
            call = ToolCall(id=call_id, name=name, arguments=args or {})
            calls.append(call)
            yield Delta(tool_call=call)
        normalised = anthropic_usage(usage).model_copy(update={"output_tokens": output_tokens})
        result = Result(
            text="".join(text),
            usage=normalised,
            finish_reason=finish_from(stop, FINISH),
            raw_finish=stop,
            tool_calls=calls,
            bad_tool_calls=bad,
            model=model,
        )
        yield Delta(result=result)

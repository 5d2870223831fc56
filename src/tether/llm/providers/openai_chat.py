"""OpenAI Chat Completions (``openai:`` and ``openai-compatible:<base_url>#<model>``)."""

from __future__ import annotations

import json
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
from tether.llm.providers.base import (
    api_key as find_api_key,
)
from tether.llm.providers.sdk_errors import classify_stainless, provider_error
from tether.llm.types import FinishReason, Message, Tool, ToolCall, Usage

FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            calls = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": calls})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def chat_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def strict_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """OpenAI's strict mode needs every property required and no extra properties. Return
    the schema with ``additionalProperties: false`` added and whether strict mode fits it."""
    fits = True

    def walk(node: Any) -> Any:
        nonlocal fits
        if isinstance(node, dict):
            node = {k: walk(v) for k, v in node.items()}
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
                if set(node.get("required", [])) != set(node["properties"]):
                    fits = False
            if "default" in node:
                fits = False
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = walk(schema)
    return out, fits


def chat_usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    pd = getattr(u, "prompt_tokens_details", None)
    cd = getattr(u, "completion_tokens_details", None)
    return Usage(
        input_tokens=u.prompt_tokens or 0,
        cached_input_tokens=(getattr(pd, "cached_tokens", None) or 0) if pd else 0,
        cache_write_tokens=(getattr(pd, "cache_write_tokens", None) or 0) if pd else 0,
        output_tokens=u.completion_tokens or 0,
        reasoning_tokens=(getattr(cd, "reasoning_tokens", None) or 0) if cd else 0,
    )


def collect_tool_calls(raw: list[tuple[str, str, Any]]) -> tuple[list[ToolCall], list[str]]:
    calls: list[ToolCall] = []
    bad: list[str] = []
    for i, (call_id, name, arguments) in enumerate(raw):
        parsed = parse_arguments(arguments)
        if parsed is None:
            bad.append(name)
        calls.append(ToolCall(id=call_id or f"call_{i}", name=name, arguments=parsed or {}))
    return calls, bad


class OpenAIChat(Provider):
    provider = "openai"
    price_provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        compatible: bool = False,
    ) -> None:
        super().__init__(model)
        require("openai", "openai-compatible" if compatible else "openai", "openai")
        self.compatible = compatible
        if compatible:
            self.provider = "openai-compatible"
            self.price_provider = "openai-compatible"
            self.base_url = base_url
            self.api_key = api_key or env_first("OPENAI_COMPATIBLE_API_KEY") or "not-needed"
        else:
            self.base_url = base_url or env_first("OPENAI_BASE_URL")
            self.api_key = find_api_key("openai", api_key, "OPENAI_API_KEY")

    def _client(self) -> Any:
        def make() -> Any:
            import openai

            return openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0)

        return client_for_loop(("openai", self.base_url, self.api_key), make)

    def _timeout(self, timeout: float) -> Any:
        import openai

        return sdk_timeout(openai, timeout)

    def _params(self, req: Request) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": chat_messages(req.messages)}
        if req.tools:
            params["tools"] = chat_tools(req.tools)
        if req.schema is not None:
            schema, strict = strict_schema(req.schema)
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": req.schema_name, "schema": schema, "strict": strict},
            }
        if req.max_tokens is not None:
            params["max_tokens" if self.compatible else "max_completion_tokens"] = req.max_tokens
        if req.temperature is not None:
            params["temperature"] = req.temperature
        params.update(req.options)
        return params

    async def complete(self, request: Request, timeout: float) -> Result:
        client = self._client()
        try:
            resp = await with_timeout(
                client.chat.completions.create(
                    **self._params(request), timeout=self._timeout(timeout)
                ),
                timeout,
            )
        except Exception as exc:
            raise provider_error(exc, classify_stainless) from exc
        choice = resp.choices[0]
        msg = choice.message
        raw = [(tc.id, tc.function.name, tc.function.arguments) for tc in msg.tool_calls or []]
        calls, bad = collect_tool_calls(raw)
        return Result(
            text=msg.content or "",
            usage=chat_usage(resp.usage),
            finish_reason=finish_from(choice.finish_reason, FINISH),
            raw_finish=choice.finish_reason,
            tool_calls=calls,
            bad_tool_calls=bad,
            model=resp.model,
        )

    async def stream(self, request: Request, timeout: float) -> AsyncIterator[Delta]:
        client = self._client()
        params = self._params(request)
        if not self.compatible:
            params["stream_options"] = {"include_usage": True}
        text: list[str] = []
        tools: dict[int, list[Any]] = {}
        finish: str | None = None
        usage = Usage()
        model: str | None = None
        try:
            stream = await with_timeout(
                client.chat.completions.create(
                    **params, stream=True, timeout=self._timeout(timeout)
                ),
                timeout,
            )
            iterator = stream.__aiter__()
            while True:
                try:
                    chunk = await with_timeout(iterator.__anext__(), timeout)
                except StopAsyncIteration:
                    break
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chat_usage(chunk.usage)
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        yield Delta(text=delta.content)
                    for tc in delta.tool_calls or []:
                        slot = tools.setdefault(tc.index, ["", "", ""])
                        slot[0] = tc.id or slot[0]
                        if tc.function is not None:
                            slot[1] = tc.function.name or slot[1]
                            slot[2] += tc.function.arguments or ""
                    finish = choice.finish_reason or finish
        except ProviderError:
            raise
        except Exception as exc:
            raise provider_error(exc, classify_stainless, "".join(text)) from exc
        calls, bad = collect_tool_calls([(s[0], s[1], s[2]) for _, s in sorted(tools.items())])
        for call in calls:
            yield Delta(tool_call=call)
        result = Result(
            text="".join(text),
            usage=usage,
            finish_reason=finish_from(finish, FINISH),
            raw_finish=finish,
            tool_calls=calls,
            bad_tool_calls=bad,
            model=model,
        )
        yield Delta(result=result)

    async def embed(self, inputs: list[str], timeout: float) -> tuple[list[list[float]], Usage]:
        client = self._client()
        try:
            resp = await with_timeout(
                client.embeddings.create(
                    model=self.model, input=inputs, timeout=self._timeout(timeout)
                ),
                timeout,
            )
        except Exception as exc:
            raise provider_error(exc, classify_stainless) from exc
        vectors = [list(d.embedding) for d in sorted(resp.data, key=lambda d: d.index)]
        tokens = resp.usage.prompt_tokens if resp.usage else 0
        return vectors, Usage(input_tokens=tokens)

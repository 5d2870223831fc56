"""OpenAI Responses API (``openai-responses:<model>``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from tether.errors import ProviderError
from tether.llm.classify import classify_http
from tether.llm.providers.base import (
    Delta,
    Provider,
    Request,
    Result,
    api_key,
    client_for_loop,
    env_first,
    require,
    sdk_timeout,
    with_timeout,
)
from tether.llm.providers.openai_chat import collect_tool_calls, strict_schema
from tether.llm.providers.sdk_errors import classify_stainless, provider_error
from tether.llm.types import FinishReason, Message, Usage


def response_input(messages: list[Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": m.tool_call_id or "",
                    "output": m.content,
                }
            )
            continue
        if m.content or not m.tool_calls:
            items.append({"role": m.role, "content": m.content})
        for c in m.tool_calls:
            items.append(
                {
                    "type": "function_call",
                    "call_id": c.id,
                    "name": c.name,
                    "arguments": json.dumps(c.arguments),
                }
            )
    return items


def response_usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    idt = getattr(u, "input_tokens_details", None)
    odt = getattr(u, "output_tokens_details", None)
    return Usage(
        input_tokens=u.input_tokens or 0,
        cached_input_tokens=(getattr(idt, "cached_tokens", None) or 0) if idt else 0,
        output_tokens=u.output_tokens or 0,
        reasoning_tokens=(getattr(odt, "reasoning_tokens", None) or 0) if odt else 0,
    )


def _finish(resp: Any, has_calls: bool) -> tuple[FinishReason, str | None]:
    details = getattr(resp, "incomplete_details", None)
    reason = getattr(details, "reason", None) if details is not None else None
    if reason == "content_filter":
        return "content_filter", reason
    if reason == "max_output_tokens":
        return "length", reason
    return ("tool_calls" if has_calls else "stop"), getattr(resp, "status", None)


def _result(resp: Any) -> Result:
    text: list[str] = []
    raw: list[tuple[str, str, Any]] = []
    for item in resp.output or []:
        if item.type == "message":
            text.extend(
                part.text for part in item.content if getattr(part, "type", "") == "output_text"
            )
        elif item.type == "function_call":
            raw.append((item.call_id, item.name, item.arguments))
    calls, bad = collect_tool_calls(raw)
    finish, raw_finish = _finish(resp, bool(calls))
    return Result(
        text="".join(text),
        usage=response_usage(resp.usage),
        finish_reason=finish,
        raw_finish=raw_finish,
        tool_calls=calls,
        bad_tool_calls=bad,
        model=getattr(resp, "model", None),
    )


class OpenAIResponses(Provider):
    provider = "openai-responses"
    price_provider = "openai"

    def __init__(
        self, model: str, *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        super().__init__(model)
        require("openai", "openai-responses", "openai")
        self.base_url = base_url or env_first("OPENAI_BASE_URL")
        self.api_key = _key(api_key)

    def _client(self) -> Any:
        def make() -> Any:
            import openai

            return openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0)

        return client_for_loop(("openai", self.base_url, self.api_key), make)

    def _timeout(self, timeout: float) -> Any:
        import openai

        return sdk_timeout(openai, timeout)

    def _params(self, req: Request) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "input": response_input(req.messages)}
        if req.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "strict": False,
                }
                for t in req.tools
            ]
        if req.schema is not None:
            schema, strict = strict_schema(req.schema)
            params["text"] = {
                "format": {
                    "type": "json_schema",
                    "name": req.schema_name,
                    "schema": schema,
                    "strict": strict,
                }
            }
        if req.max_tokens is not None:
            params["max_output_tokens"] = req.max_tokens
        if req.temperature is not None:
            params["temperature"] = req.temperature
        params.update(req.options)
        return params

    async def complete(self, request: Request, timeout: float) -> Result:
        client = self._client()
        try:
            resp = await with_timeout(
                client.responses.create(**self._params(request), timeout=self._timeout(timeout)),
                timeout,
            )
        except Exception as exc:
            raise provider_error(exc, classify_stainless) from exc
        return _result(resp)

    async def stream(self, request: Request, timeout: float) -> AsyncIterator[Delta]:
        client = self._client()
        text: list[str] = []
        final: Any = None
        try:
            stream = await with_timeout(
                client.responses.create(
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
                kind = getattr(event, "type", "")
                if kind == "response.output_text.delta":
                    text.append(event.delta)
                    yield Delta(text=event.delta)
                elif kind in ("response.completed", "response.incomplete"):
                    final = event.response
                elif kind in ("error", "response.failed"):
                    err = getattr(getattr(event, "response", None), "error", None) or event
                    body = {
                        "error": {
                            "code": getattr(err, "code", None),
                            "message": getattr(err, "message", ""),
                        }
                    }
                    raise ProviderError(classify_http(0, {}, body), partial_text="".join(text))
        except ProviderError:
            raise
        except Exception as exc:
            raise provider_error(exc, classify_stainless, "".join(text)) from exc
        if final is None:
            body = {
                "error": {
                    "type": "server_error",
                    "message": "the stream ended without response.completed",
                }
            }
            raise ProviderError(classify_http(0, {}, body), partial_text="".join(text))
        result = _result(final)
        for call in result.tool_calls:
            yield Delta(tool_call=call)
        yield Delta(result=result)


def _key(explicit: str | None) -> str:
    return api_key("openai", explicit, "OPENAI_API_KEY")

"""Google Gemini ``generateContent`` through google-genai (``google:<model>``)."""

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
    require,
    with_timeout,
)
from tether.llm.providers.base import api_key as find_api_key
from tether.llm.providers.sdk_errors import classify_genai, provider_error
from tether.llm.types import FinishReason, Message, ToolCall, Usage

FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}


def gemini_contents(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system instruction, contents). A tool result needs its function's name, taken from
    the assistant turn that called it."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "", "tool")
            part = {"function_response": {"name": name, "response": {"result": m.content}}}
            out.append({"role": "user", "parts": [part]})
            continue
        parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
        parts += [{"function_call": {"name": c.name, "args": c.arguments}} for c in m.tool_calls]
        out.append(
            {"role": "model" if m.role == "assistant" else "user", "parts": parts or [{"text": ""}]}
        )
    return system, out


def gemini_usage(u: Any) -> Usage:
    """Gemini counts thoughts apart from candidates: output = candidates + thoughts."""
    if u is None:
        return Usage()
    thoughts = getattr(u, "thoughts_token_count", None) or 0
    return Usage(
        input_tokens=getattr(u, "prompt_token_count", None) or 0,
        cached_input_tokens=getattr(u, "cached_content_token_count", None) or 0,
        output_tokens=(getattr(u, "candidates_token_count", None) or 0) + thoughts,
        reasoning_tokens=thoughts,
    )


def _parts(resp: Any) -> tuple[str, list[ToolCall], str | None]:
    text: list[str] = []
    calls: list[ToolCall] = []
    finish: str | None = None
    for cand in (resp.candidates or [])[:1]:
        reason = getattr(cand, "finish_reason", None)
        if reason is not None:
            finish = str(getattr(reason, "value", reason))
        content = getattr(cand, "content", None)
        for part in getattr(content, "parts", None) or []:
            if getattr(part, "thought", False):
                continue
            if part.text:
                text.append(part.text)
            fc = part.function_call
            if fc is not None:
                calls.append(
                    ToolCall(
                        id=fc.id or f"call_{len(calls)}",
                        name=fc.name or "",
                        arguments=dict(fc.args or {}),
                    )
                )
    feedback = getattr(resp, "prompt_feedback", None)
    block = getattr(feedback, "block_reason", None) if feedback is not None else None
    if block is not None:
        finish = "SAFETY"
    return "".join(text), calls, finish


class Gemini(Provider):
    provider = "google"
    price_provider = "google"

    def __init__(
        self, model: str, *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        super().__init__(model)
        require("google.genai", "google", "google-genai")
        self.base_url = base_url or env_first("GOOGLE_GEMINI_BASE_URL")
        self.api_key = find_api_key("google", api_key, "GEMINI_API_KEY", "GOOGLE_API_KEY")

    def _client(self) -> Any:
        def make() -> Any:
            from google import genai
            from google.genai import types

            options = types.HttpOptions(base_url=self.base_url) if self.base_url else None
            return genai.Client(api_key=self.api_key, http_options=options)

        return client_for_loop(("google", self.base_url, self.api_key), make)

    def _config(self, req: Request, timeout: float) -> tuple[list[dict[str, Any]], Any]:
        from google.genai import types

        system, contents = gemini_contents(req.messages)
        config: dict[str, Any] = {"http_options": types.HttpOptions(timeout=int(timeout * 1000))}
        if system:
            config["system_instruction"] = system
        if req.tools:
            decls = [
                {
                    "name": t.name,
                    "description": t.description,
                    "parameters_json_schema": t.parameters,
                }
                for t in req.tools
            ]
            config["tools"] = [{"function_declarations": decls}]
        if req.schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = req.schema
        if req.max_tokens is not None:
            config["max_output_tokens"] = req.max_tokens
        if req.temperature is not None:
            config["temperature"] = req.temperature
        config.update(req.options)
        return contents, types.GenerateContentConfig(**config)

    async def complete(self, request: Request, timeout: float) -> Result:
        client = self._client()
        contents, config = self._config(request, timeout)
        try:
            resp = await with_timeout(
                client.aio.models.generate_content(
                    model=self.model, contents=contents, config=config
                ),
                timeout,
            )
        except Exception as exc:
            raise provider_error(exc, classify_genai) from exc
        text, calls, finish = _parts(resp)
        return Result(
            text=text,
            usage=gemini_usage(resp.usage_metadata),
            finish_reason=finish_from(finish, FINISH) if not calls else "tool_calls",
            raw_finish=finish,
            tool_calls=calls,
            model=getattr(resp, "model_version", None),
        )

    async def stream(self, request: Request, timeout: float) -> AsyncIterator[Delta]:
        client = self._client()
        contents, config = self._config(request, timeout)
        text: list[str] = []
        calls: list[ToolCall] = []
        finish: str | None = None
        usage = Usage()
        model: str | None = None
        try:
            stream = await with_timeout(
                client.aio.models.generate_content_stream(
                    model=self.model, contents=contents, config=config
                ),
                timeout,
            )
            iterator = stream.__aiter__()
            while True:
                try:
                    chunk = await with_timeout(iterator.__anext__(), timeout)
                except StopAsyncIteration:
                    break
                piece, piece_calls, piece_finish = _parts(chunk)
                if piece:
                    text.append(piece)
                    yield Delta(text=piece)
                calls.extend(piece_calls)
                finish = piece_finish or finish
                if chunk.usage_metadata is not None:
                    usage = gemini_usage(chunk.usage_metadata)
                model = getattr(chunk, "model_version", None) or model
        except Exception as exc:
            raise provider_error(exc, classify_genai, "".join(text)) from exc
        if finish is None:  # the connection dropped before the last chunk
            from tether.llm.classify import classify_http

            body = {
                "error": {
                    "status": "UNAVAILABLE",
                    "message": "the stream ended without a finish reason",
                }
            }
            raise ProviderError(classify_http(0, {}, body), partial_text="".join(text))
        for call in calls:
            yield Delta(tool_call=call)
        result = Result(
            text="".join(text),
            usage=usage,
            finish_reason=finish_from(finish, FINISH) if not calls else "tool_calls",
            raw_finish=finish,
            tool_calls=calls,
            model=model,
        )
        yield Delta(result=result)

    async def embed(self, inputs: list[str], timeout: float) -> tuple[list[list[float]], Usage]:
        from google.genai import types

        client = self._client()
        config = types.EmbedContentConfig(
            http_options=types.HttpOptions(timeout=int(timeout * 1000))
        )
        try:
            resp = await with_timeout(
                client.aio.models.embed_content(model=self.model, contents=inputs, config=config),
                timeout,
            )
        except Exception as exc:
            raise provider_error(exc, classify_genai) from exc
        vectors = [list(e.values or []) for e in resp.embeddings or []]
        return vectors, Usage(input_tokens=sum(max(1, len(t) // 4) for t in inputs))

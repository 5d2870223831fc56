"""``TetherModel``: a pydantic-ai ``Model`` that sends each request through ``tether.llm``,
so an agent's requests get tether's error classifier, retries that honour the server's
delay, fallbacks, shared circuit breakers, usage and cost. Messages, tools, tool calls,
structured output (pydantic-ai's output tools) and usage are mapped both ways."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_ai import _utils
from pydantic_ai.messages import (
    FinishReason,
    InstructionPart,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    ModelResponseStreamEvent,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.usage import RequestUsage

from tether.errors import ConfigurationError
from tether.llm import LLMResponse, LLMStream, Message, Tool, ToolCall, Usage, acomplete, astream
from tether.llm.providers import resolve

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_call",
    "content_filter": "content_filter",
    "error": "error",
}

#: Structured output goes through output tools (pydantic-ai's default), which every tether
#: provider carries; the JSON-schema response format is not offered.
PROFILE = ModelProfile(
    supports_tools=True,
    supports_json_schema_output=False,
    supports_json_object_output=False,
    default_structured_output_mode="tool",
)


class TetherModel(Model):
    """``TetherModel("openai:gpt-4.1-mini", fallbacks=["anthropic:claude-sonnet-4-5"])``:
    any tether model string as a pydantic-ai model. ``options`` are ``tether.llm.acomplete``
    options (``deadline``, ``timeout``, ``max_attempts``, ``circuit``, ``max_cost_usd``...)."""

    def __init__(
        self,
        model: str,
        *,
        fallbacks: Sequence[str] = (),
        settings: ModelSettings | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError(
                f"TetherModel needs a tether model string such as 'openai:gpt-4.1-mini', got {model!r}"
            )
        resolve(model)  # an unknown prefix or a missing extra fails here, not at the first request
        for spec in fallbacks:
            resolve(spec)
        super().__init__(settings=settings, profile=PROFILE)
        self._spec = model
        self._fallbacks = list(fallbacks)
        self._options = options

    @property
    def model_name(self) -> str:
        return self._spec

    @property
    def system(self) -> str:
        return self._spec.split(":", 1)[0]

    @property
    def fallbacks(self) -> list[str]:
        return list(self._fallbacks)

    # -- one request -----------------------------------------------------------------
    def _call(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> tuple[list[Message], list[Tool], dict[str, Any]]:
        prepared = self.prepare_messages(messages, parameters)
        settings: dict[str, Any] = dict(model_settings or {})
        options: dict[str, Any] = {**self._options}
        if self._fallbacks:
            options["fallbacks"] = self._fallbacks
        if settings.get("max_tokens") is not None:
            options["max_tokens"] = settings["max_tokens"]
        if settings.get("temperature") is not None:
            options["temperature"] = settings["temperature"]
        if settings.get("timeout") is not None and isinstance(settings["timeout"], int | float):
            options.setdefault("timeout", float(settings["timeout"]))
        tools = [_tool(t) for t in [*parameters.function_tools, *parameters.output_tools]]
        return to_tether_messages(prepared, instructions(prepared, parameters)), tools, options

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        msgs, tools, options = self._call(messages, model_settings, model_request_parameters)
        response = await acomplete(self._spec, msgs, tools=tools or None, **options)
        return to_model_response(response)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        msgs, tools, options = self._call(messages, model_settings, model_request_parameters)
        stream = astream(self._spec, msgs, tools=tools or None, **options)
        yield TetherStreamedResponse(
            model_request_parameters=model_request_parameters,
            _model_name=self._spec,
            _stream=stream,
        )


@dataclass
class TetherStreamedResponse(StreamedResponse):
    """The events of a ``tether.llm.astream`` reply: text deltas, then whole tool calls."""

    _model_name: str
    _stream: LLMStream
    _timestamp: datetime = field(default_factory=_utils.now_utc)

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        index = 0
        async for chunk in self._stream:
            if chunk.text:
                for event in self._parts_manager.handle_text_delta(
                    vendor_part_id="content", content=chunk.text
                ):
                    yield event
            elif chunk.tool_call is not None:
                index += 1
                call = chunk.tool_call
                yield self._parts_manager.handle_tool_call_part(
                    vendor_part_id=f"tool:{index}",
                    tool_name=call.name,
                    args=call.arguments,
                    tool_call_id=call.id or None,
                )
        final = self._stream.response
        if final is not None:
            self._usage = request_usage(final.usage)
            self.provider_details = tether_details(final)
            self.finish_reason = _FINISH.get(final.finish_reason)

    async def close_stream(self) -> None:
        return None

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def provider_name(self) -> str:
        return self._model_name.split(":", 1)[0]

    @property
    def provider_url(self) -> None:
        return None

    @property
    def timestamp(self) -> datetime:
        return self._timestamp


# -- mapping ---------------------------------------------------------------------------
def instructions(messages: list[ModelMessage], parameters: ModelRequestParameters) -> str | None:
    """The instructions in force for this request (pydantic-ai's instruction parts, else the
    last request's ``instructions``)."""
    if parameters.instruction_parts:
        return InstructionPart.join(parameters.instruction_parts) or None
    for message in reversed(messages):
        if isinstance(message, ModelRequest) and message.instructions:
            return message.instructions
    return None


def to_tether_messages(messages: list[ModelMessage], system: str | None) -> list[Message]:
    """pydantic-ai messages (after ``prepare_messages``) as tether's neutral messages."""
    out: list[Message] = []
    if system:
        out.append(Message(role="system", content=system))
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                out.extend(_request_part(part))
        elif isinstance(message, ModelResponse):
            text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
            calls = [
                ToolCall(id=p.tool_call_id, name=p.tool_name, arguments=p.args_as_dict())
                for p in message.parts
                if isinstance(p, ToolCallPart)
            ]
            if text or calls:
                out.append(Message(role="assistant", content=text, tool_calls=calls))
    return out


def _request_part(part: Any) -> list[Message]:
    if isinstance(part, SystemPromptPart):
        return [Message(role="system", content=part.content)]
    if isinstance(part, UserPromptPart):
        return [Message(role="user", content=_user_text(part))]
    if isinstance(part, ToolReturnPart):
        return [
            Message(role="tool", content=part.model_response_str(), tool_call_id=part.tool_call_id)
        ]
    response = getattr(part, "model_response", None)
    if callable(response):  # a retry part that prepare_messages left as is
        call_id = getattr(part, "tool_call_id", None)
        if getattr(part, "tool_name", None) and call_id:
            return [Message(role="tool", content=str(response()), tool_call_id=call_id)]
        return [Message(role="user", content=str(response()))]
    return []


def _user_text(part: UserPromptPart) -> str:
    if isinstance(part.content, str):
        return part.content
    texts = []
    for item in part.content:
        if isinstance(item, str):
            texts.append(item)
        else:
            raise ConfigurationError(
                f"TetherModel sends text only; this prompt holds a {type(item).__name__}. Use "
                "the provider's own pydantic-ai model for images, audio and documents"
            )
    return "\n".join(texts)


def _tool(definition: ToolDefinition) -> Tool:
    return Tool(
        name=definition.name,
        description=definition.description or "",
        parameters=definition.parameters_json_schema,
    )


def request_usage(usage: Usage) -> RequestUsage:
    return RequestUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        details={"reasoning_tokens": usage.reasoning_tokens} if usage.reasoning_tokens else {},
    )


def tether_details(response: LLMResponse[Any]) -> dict[str, Any]:
    """What pydantic-ai has no field for, kept in ``provider_details["tether"]``: the cost
    and every attempt (the dashboard shows them)."""
    return {
        "tether": {
            "model": response.model,
            "provider": response.provider,
            "cost_usd": response.cost_usd,
            "attempts": [a.model_dump(mode="json") for a in response.attempts],
        }
    }


def to_model_response(response: LLMResponse[Any]) -> ModelResponse:
    parts: list[ModelResponsePart] = []
    if response.text:
        parts.append(TextPart(content=response.text))
    for call in response.tool_calls:
        parts.append(
            ToolCallPart(tool_name=call.name, args=json.dumps(call.arguments), tool_call_id=call.id)
        )
    return ModelResponse(
        parts=parts,
        usage=request_usage(response.usage),
        model_name=response.model,
        provider_name=response.provider,
        provider_details=tether_details(response),
        finish_reason=_FINISH.get(response.finish_reason),
    )


__all__ = ["PROFILE", "TetherModel", "TetherStreamedResponse", "to_tether_messages"]

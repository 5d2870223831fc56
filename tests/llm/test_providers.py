"""Each wire adapter against FakeLLMServer over real HTTP: requests, replies, usage, errors."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from tether import llm
from tether.testing import FakeLLMServer

from .conftest import WIRES


class Ticket(BaseModel):
    label: str
    urgent: bool


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("wire", list(WIRES))
def test_text_reply_and_normalised_usage(server: FakeLLMServer, wire: str) -> None:
    usage = {
        "input_tokens": 1200,
        "cached_input_tokens": 1000,
        "output_tokens": 50,
        "reasoning_tokens": 20,
    }
    server.reply("Paris.", usage=usage)
    resp = llm.complete(
        WIRES[wire],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital?"}],
    )
    assert resp.text == "Paris."
    assert resp.finish_reason == "stop"
    assert resp.provider == WIRES[wire].split(":")[0]
    assert resp.usage.input_tokens == 1200  # cached tokens included, whatever the wire's convention
    assert resp.usage.cached_input_tokens == 1000
    assert resp.usage.output_tokens == 50
    if wire != "anthropic":  # Anthropic reports thinking inside output_tokens only
        assert resp.usage.reasoning_tokens == 20
    assert resp.cost_usd is not None and resp.cost_usd > 0
    assert server.request_count(wire=wire) == 1


def test_anthropic_cache_fields_are_added_to_input(server: FakeLLMServer) -> None:
    server.reply(
        "ok",
        usage={
            "input_tokens": 5000,
            "cached_input_tokens": 3000,
            "cache_write_tokens": 1500,
            "output_tokens": 10,
        },
    )
    resp = llm.complete("anthropic:claude-haiku-4-5", "hi")
    sent = server.requests[-1]
    assert sent.body["max_tokens"] == 4096
    assert resp.usage.input_tokens == 5000
    assert resp.usage.cached_input_tokens == 3000
    assert resp.usage.cache_write_tokens == 1500
    # claude-haiku-4-5: 500 fresh * $1 + 3000 cached * $0.10 + 1500 written * $1.25 + 10 out * $5
    assert resp.cost_usd == pytest.approx((500 * 1 + 3000 * 0.1 + 1500 * 1.25 + 10 * 5) / 1e6)


@pytest.mark.parametrize("wire", list(WIRES))
def test_structured_output_uses_each_native_form(server: FakeLLMServer, wire: str) -> None:
    server.reply('{"label": "billing", "urgent": true}')
    resp = llm.complete(WIRES[wire], "My invoice is wrong", output=Ticket)
    assert resp.parsed == Ticket(label="billing", urgent=True)
    body = server.requests[-1].body
    if wire == "chat":
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    elif wire == "responses":
        assert body["text"]["format"]["type"] == "json_schema"
        assert body["text"]["format"]["name"] == "Ticket"
    elif wire == "anthropic":
        assert body["output_config"]["format"]["schema"]["required"] == ["label", "urgent"]
    else:
        cfg = body["generationConfig"]
        assert cfg["responseMimeType"] == "application/json"
        assert cfg["responseJsonSchema"]["properties"]["label"]["type"] == "string"


@pytest.mark.parametrize("wire", list(WIRES))
def test_tool_calls_round_trip(server: FakeLLMServer, wire: str) -> None:
    server.reply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    server.reply("It is sunny in Paris.")
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = llm.complete(WIRES[wire], messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("get_weather", {"city": "Paris"})]
    call = first.tool_calls[0]
    messages += [
        {"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = llm.complete(WIRES[wire], messages, tools=[WEATHER])
    assert second.text == "It is sunny in Paris."
    body = json.dumps(server.requests[-1].body)
    assert "sunny" in body and "get_weather" in body


@pytest.mark.parametrize("wire", list(WIRES))
def test_streaming_yields_tokens_then_a_response(server: FakeLLMServer, wire: str) -> None:
    server.reply("The quick brown fox jumps.", usage={"input_tokens": 30, "output_tokens": 7})
    s = llm.stream(WIRES[wire], "Say something")
    pieces = [c.text for c in s]
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces) == "The quick brown fox jumps."
    assert s.response is not None
    assert s.response.text == "The quick brown fox jumps."
    assert s.response.usage.output_tokens == 7
    assert server.requests[-1].stream


@pytest.mark.parametrize("wire", list(WIRES))
def test_mid_stream_failure_raises_with_the_partial_text(server: FakeLLMServer, wire: str) -> None:
    server.fault("mid_stream_overload")
    s = llm.stream(WIRES[wire], "Say something")
    received: list[str] = []
    with pytest.raises(llm.StreamInterrupted) as info:
        for chunk in s:
            received.append(chunk.text)
    assert info.value.partial_text == "".join(received) != ""
    assert server.request_count() == 1  # never retried after the first token


@pytest.mark.parametrize("wire", list(WIRES))
def test_stream_is_retried_before_its_first_token(server: FakeLLMServer, wire: str) -> None:
    server.fault("overloaded", retry_after_ms=50)
    server.reply("fine")
    s = llm.stream(WIRES[wire], "hi")
    assert "".join(c.text for c in s) == "fine"
    assert s.response is not None and [a.ok for a in s.response.attempts] == [False, True]


@pytest.mark.parametrize("wire", list(WIRES))
def test_context_length_error_of_each_wire(server: FakeLLMServer, wire: str) -> None:
    server.fault("context_length")
    with pytest.raises(llm.ContextLengthExceeded) as info:
        llm.complete(WIRES[wire], "a very long prompt")
    assert info.value.kind is llm.ErrorKind.CONTEXT_LENGTH_EXCEEDED
    assert server.request_count() == 1


@pytest.mark.parametrize("wire", list(WIRES))
def test_content_filter_is_typed_and_not_retried(server: FakeLLMServer, wire: str) -> None:
    server.fault("content_filter")
    with pytest.raises(llm.ContentFiltered):
        llm.complete(WIRES[wire], "something awful")
    assert server.request_count() == 1


def test_anthropic_529_is_overloaded_and_retried(server: FakeLLMServer) -> None:
    server.fault("overloaded", retry_after_ms=20)
    resp = llm.complete("anthropic:claude-haiku-4-5", "hi")
    assert resp.attempts[0].status == 529
    assert resp.attempts[0].error_class == "overloaded"
    assert resp.attempts[1].ok


def test_gemini_retry_info_is_honoured(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after=0.3)
    resp = llm.complete("google:gemini-2.5-flash", "hi")
    assert resp.attempts[0].retry_after_s == pytest.approx(0.3)
    assert resp.attempts[1].started_at - resp.attempts[0].started_at >= 0.3


def test_openai_compatible_takes_its_base_url_from_the_model_string(server: FakeLLMServer) -> None:
    server.reply("hello from vllm")
    resp = llm.complete(f"openai-compatible:{server.url}/v1#Qwen2.5-0.5B", "hi", max_tokens=20)
    assert resp.text == "hello from vllm"
    assert resp.provider == "openai-compatible"
    assert server.requests[-1].body["model"] == "Qwen2.5-0.5B"
    assert server.requests[-1].body["max_tokens"] == 20
    assert resp.cost_usd is None  # not in the price table: unknown, not zero


@pytest.mark.parametrize("model", ["openai:text-embedding-3-small", "google:gemini-embedding-001"])
def test_embeddings(server: FakeLLMServer, model: str) -> None:
    result = llm.embed(model, ["one", "two", "three"])
    assert len(result.vectors) == 3
    assert all(len(v) == 8 for v in result.vectors)
    assert result.vectors[0] != result.vectors[1]
    assert result.usage.input_tokens > 0


def test_embeddings_are_retried(server: FakeLLMServer) -> None:
    server.fault("server_error")
    result = llm.embed("openai:text-embedding-3-small", "one")
    assert [a.ok for a in result.attempts] == [False, True]


def test_truncated_body_is_a_server_error_and_retried(server: FakeLLMServer) -> None:
    server.fault("truncated_body")
    resp = llm.complete("openai:gpt-4.1-mini", "hi")
    assert resp.attempts[0].error_class == "server_error"
    assert resp.attempts[1].ok


@pytest.mark.parametrize("wire", list(WIRES))
def test_streamed_tool_calls_are_assembled(server: FakeLLMServer, wire: str) -> None:
    server.reply("Checking.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    s = llm.stream(WIRES[wire], "Weather in Oslo?", tools=[WEATHER])
    chunks = list(s)
    calls = [c.tool_call for c in chunks if c.tool_call is not None]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert s.response is not None
    assert s.response.finish_reason == "tool_calls"
    assert s.response.tool_calls == calls


def test_streamed_invalid_tool_json_is_not_silently_accepted(server: FakeLLMServer) -> None:
    server.fault("invalid_tool_json")
    s = llm.stream("anthropic:claude-haiku-4-5", "Weather?", tools=[WEATHER])
    with pytest.raises(llm.InvalidOutput, match="get_weather"):
        list(s)  # a stream cannot be re-asked: its tokens are already out
    assert server.request_count() == 1

"""Records survive a JSON round trip: a durable step checkpoints an LLMResponse as JSON."""

from __future__ import annotations

import json

from pydantic import BaseModel

from tether import llm
from tether.llm import LLMResponse
from tether.llm.types import to_messages, to_tools
from tether.testing import FakeLLMServer


class Category(BaseModel):
    name: str
    score: float


def test_response_round_trips_through_json_with_a_typed_parsed(server: FakeLLMServer) -> None:
    server.fault("server_error")
    server.reply(
        '{"name": "billing", "score": 0.9}', usage={"input_tokens": 10, "output_tokens": 5}
    )
    resp = llm.complete("openai:gpt-4.1-mini", "classify", output=Category)
    data = json.loads(json.dumps(resp.model_dump(mode="json")))
    again = LLMResponse[Category].model_validate(data)
    assert again == resp
    assert isinstance(again.parsed, Category)
    assert again.attempts[0].error_class == "server_error"
    assert again.attempts[0].status == 500
    untyped = LLMResponse.model_validate(data)
    assert untyped.parsed == {"name": "billing", "score": 0.9}
    assert llm.restore(data, Category) == resp
    assert llm.restore(data).parsed == {"name": "billing", "score": 0.9}


def test_tool_calls_round_trip_through_json(server: FakeLLMServer) -> None:
    server.reply("", tool_calls=[{"name": "lookup", "arguments": {"id": 7, "tags": ["a"]}}])
    resp = llm.complete("openai:gpt-4.1-mini", "x", tools=[{"name": "lookup"}])
    again = LLMResponse.model_validate_json(resp.model_dump_json())
    assert again.tool_calls == resp.tool_calls
    assert again.tool_calls[0].arguments == {"id": 7, "tags": ["a"]}


def test_messages_accept_strings_openai_dicts_and_content_parts() -> None:
    msgs = to_messages(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
    )
    assert msgs[0].content == "ab"
    assert msgs[1].tool_calls[0].arguments == {"x": 1}
    assert to_messages("hello")[0].role == "user"


def test_tools_accept_openai_dicts_plain_dicts_and_models() -> None:
    tools = to_tools(
        [
            {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
            {"name": "b", "description": "B"},
            Category,
        ]
    )
    assert [t.name for t in tools] == ["a", "b", "Category"]
    assert tools[2].parameters["properties"]["score"]["type"] == "number"

"""Context windows on the dashboard: the JSON API (listed in the OpenAPI document), the
window page, and a run's LLM call showing its context report (tokens per slot)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

import tether
from tether.dashboard import create_app
from tether.testing import FakeLLMServer, temporary_harness


@pytest.fixture
def th() -> Iterator[tether.Harness]:
    with temporary_harness() as harness:
        yield harness


def windowed_run(th: tether.Harness, server: FakeLLMServer) -> str:
    """A run whose LLM call is built from window ``support/1`` (a pin, a large tool result
    shown as a stub); returns the run id."""
    model = f"openai-compatible:{server.url}/v1#tiny"
    server.reply("", tool_calls=[{"name": "track", "arguments": {"order": "ORD-9"}}])
    server.reply("It is in Leeds.")

    @th.function(id="support")
    async def support(ctx: tether.Context) -> str:
        conv = ctx.context("support/1", budget=900, system="Be brief.", subject="user:7")
        await conv.pin("customer", "Ada, account ACC-7781")
        await conv.add("user", "Where is ORD-9? My email is ada@example.com")
        first = await ctx.step.llm("think", model=model, context=conv)
        await conv.add("tool", "scan at depot Leeds. " * 300, tool_call_id=first.tool_calls[0].id)
        final = await ctx.step.llm("answer", model=model, context=conv)
        return str(final.text)

    assert th.run(support) == "It is in Leeds."
    return th.list_runs("support")[0].id


def test_window_api_and_pages(th: tether.Harness) -> None:
    with FakeLLMServer() as server:
        run_id = windowed_run(th, server)
    with TestClient(create_app(th, token="")) as client:
        listed = client.get("/api/windows").json()["windows"]
        assert [(w["key"], w["subject"], w["items"]) for w in listed] == [
            ("support/1", "user:7", 5)
        ]
        doc = client.get(f"/api/windows/{quote('support/1')}").json()
        assert [i["kind"] for i in doc["items"]] == [
            "pin",
            "message",
            "message",
            "artifact",
            "message",
        ]
        assert [p["name"] for p in doc["pins"]] == ["customer"]
        assert len(doc["artifacts"]) == 1 and doc["artifacts"][0]["handle"].startswith("art_")
        assert "ada@example.com" not in str(doc)  # item texts pass the redactor
        report = doc["items"][-1]["report"]
        assert report["tokens"] <= 900 and report["stubbed"] == [doc["artifacts"][0]["handle"]]
        assert client.get("/api/windows/nope").status_code == 404
        page = client.get(f"/windows/{quote('support/1')}").text
        assert "ACC-7781" in page and 'class="artifact"' in page and 'class="report"' in page
        assert client.get("/windows/nope").status_code == 404
        run_page = client.get(f"/runs/{run_id}").text
        assert 'class="context-report" data-window="support/1"' in run_page
        assert "tool_results" in run_page and "pinned" in run_page
        spec = client.get("/api/openapi.json").json()
        assert {"/api/windows", "/api/windows/{key}"} <= set(spec["paths"])

"""The dashboard's JSON API through an HTTP client: listing, filters, paging, a run's
timeline, redaction, actions, events, auth and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.testclient import TestClient

import tether
from tests.dashboard.conftest import Server, build, wait_for
from tether.dashboard import create_app, is_loopback
from tether.testing import FakeLLMServer, temporary_harness


@pytest.fixture
def th() -> Iterator[tether.Harness]:
    with temporary_harness() as harness:
        build(harness)
        yield harness


@pytest.fixture
def client(th: tether.Harness) -> Iterator[TestClient]:
    with TestClient(create_app(th, token="")) as c:
        yield c


def test_runs_list_filters_and_pages(th: tether.Harness, client: TestClient) -> None:
    for i in range(5):
        th.run("triage", {"id": f"t{i}"})
    th.enqueue("sleeper")
    runs = client.get("/api/runs").json()["runs"]
    assert [r["function_id"] for r in runs].count("triage") == 5
    assert client.get("/api/runs?function_id=sleeper").json()["runs"][0]["status"] == "queued"
    assert len(client.get("/api/runs?status=completed").json()["runs"]) == 5
    assert client.get("/api/runs?status=failed").json()["runs"] == []
    page1 = client.get("/api/runs?limit=2&function_id=triage").json()
    page2 = client.get(f"/api/runs?limit=2&function_id=triage&before={page1['next']}").json()
    ids = [r["id"] for r in page1["runs"] + page2["runs"]]
    assert len(set(ids)) == 4 and page2["next"]
    found = client.get("/api/runs?q=t3").json()["runs"]
    assert len(found) == 1
    assert client.get("/api/runs?since=4102444800").json()["runs"] == []  # year 2100
    assert client.get("/api/runs?limit=0").status_code == 400
    assert client.get("/api/runs?status=bogus").status_code == 400
    assert client.get("/api/runs?since=yesterday").status_code == 400


def test_run_detail_shows_the_failed_then_retried_attempt_redacted(
    th: tether.Harness, client: TestClient
) -> None:
    th.run("triage", {"id": "x", "email": "bob@example.com"})
    run_id = th.list_runs("triage")[0].id
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "completed" and run["queue_wait_s"] >= 0
    assert run["input"] == {"id": "x", "email": "[REDACTED]"}
    fetch = run["steps"][0]
    assert fetch["id"] == "fetch" and fetch["retries"] == 1
    failed, ok = fetch["attempts"]
    assert failed["error_type"] == "ConnectionError" and not failed["ok"]
    assert "alice@example.com" not in failed["error_message"]
    assert "alice@example.com" not in failed["traceback"]
    assert ok["ok"]
    assert fetch["output"]["token"] == "[REDACTED]"
    assert client.get("/api/runs/nope").status_code == 404
    assert client.get(f"/runs/{run_id}").status_code == 200
    assert "[REDACTED]" in client.get(f"/runs/{run_id}").text
    assert "sk-live" not in client.get(f"/runs/{run_id}").text


def test_llm_step_is_rendered_as_a_chat(th: tether.Harness) -> None:
    with FakeLLMServer() as server:
        server.reply("Billing, most likely.")
        model = f"openai-compatible:{server.url}/v1#tiny"

        @th.function(id="ask")
        async def ask(ctx: tether.Context) -> str:
            resp = await ctx.step.llm(
                "classify", model=model, messages=[{"role": "user", "content": "invoice?"}]
            )
            return str(resp.text)

        th.run(ask)
    run_id = th.list_runs("ask")[0].id
    with TestClient(create_app(th, token="")) as client:
        step = client.get(f"/api/runs/{run_id}").json()["steps"][0]
        assert step["llm"]["text"] == "Billing, most likely."
        assert step["llm"]["usage"]["input_tokens"] > 0
        assert step["kind"] == "llm"  # stored as a "run" step; shown as what it is
        html = client.get(f"/runs/{run_id}").text
    assert "Billing, most likely." in html and 'class="msg assistant"' in html
    assert "<td>llm</td>" in html and 'class="rerun" data-step="classify"' in html


def test_actions_cancel_replay_and_send_event(th: tether.Harness, client: TestClient) -> None:
    handle = th.enqueue("sleeper")
    assert client.post(f"/api/runs/{handle.run_id}/cancel").json() == {"status": "cancelled"}
    assert th.get_run(handle.run_id).status is tether.RunStatus.CANCELLED
    assert client.post("/api/runs/nope/cancel").status_code == 404

    th.run("triage", {"id": "r"})
    original = th.list_runs("triage")[0].id
    again = client.post(f"/api/runs/{original}/replay", json={"from_step": "label"}).json()
    assert th.get_run(again["run_id"]).replay_of == original
    assert tether.RunHandle(th, again["run_id"]).status() is tether.RunStatus.QUEUED
    assert client.post(f"/api/runs/{original}/replay", json={"from_step": 3}).status_code == 400
    assert client.post(f"/api/runs/{original}/replay", content=b"[").status_code == 400
    assert client.post("/api/runs/nope/replay", json={}).status_code == 404

    sent = client.post("/api/events", json={"name": "ticket.created", "data": {"id": 9}}).json()
    (accepted,) = sent["accepted"]
    assert len(accepted["run_ids"]) == 1
    events = client.get("/api/events").json()["events"]
    assert events[0]["id"] == accepted["event_id"]
    assert events[0]["runs"][0]["id"] == accepted["run_ids"][0]
    assert client.post("/api/events", json={"data": {}}).status_code == 400
    assert client.post("/api/events", json={"name": "x", "data": [1]}).status_code == 400


def test_functions_have_success_rate_and_percentiles(
    th: tether.Harness, client: TestClient
) -> None:
    for i in range(3):
        th.run("triage", {"id": i})
    stats = {f["id"]: f for f in client.get("/api/functions").json()["functions"]}
    assert stats["triage"]["runs"] == 3 and stats["triage"]["success_rate"] == 1.0
    assert stats["triage"]["p50_s"] is not None and stats["triage"]["p95_s"] is not None
    assert stats["triage"]["retries"] == 3  # one failed attempt per run
    assert stats["sleeper"]["runs"] == 0
    assert "triage" in client.get("/functions").text


def test_token_is_checked_on_every_page_and_api_call(th: tether.Harness) -> None:
    with TestClient(create_app(th, token="s3cret"), follow_redirects=False) as client:
        for path in ("/api/runs", "/api/functions", "/api/events", "/api/openapi.json"):
            assert client.get(path).status_code == 401
        assert client.post("/api/events", json={"name": "x"}).status_code == 401
        assert client.get("/runs").status_code == 401
        bearer = {"Authorization": "Bearer s3cret"}
        assert client.get("/api/runs", headers=bearer).status_code == 200
        assert client.get("/api/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/login?token=nope").status_code == 401
        login = client.get("/login?token=s3cret")
        assert login.status_code == 303
        assert client.get("/runs").status_code == 200  # the session cookie
        assert "s3cret" not in client.get("/runs").text


def test_openapi_document_lists_the_api(client: TestClient) -> None:
    doc = client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/functions",
        "/api/events",
        "/api/runs/{run_id}/cancel",
        "/api/runs/{run_id}/replay",
    } <= set(doc["paths"])


def test_live_updates_over_server_sent_events(live_server: Server) -> None:
    th = live_server.harness
    handle = th.enqueue("sleeper")
    wait_for(lambda: handle.status() is tether.RunStatus.SLEEPING, what="the run to sleep")
    url = f"{live_server.url}/api/stream?run_id={handle.run_id}&seen=x"
    with httpx.stream("GET", url, timeout=15) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: hello"
        changes = (next(lines) for line in lines if line.startswith("event: change"))
        assert "sleeping" in next(changes)  # differs from what the page had seen: at once
        th.cancel(handle.run_id)
        assert "cancelled" in next(changes)


def test_loopback_check() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_events_show_their_flow_control_decisions(th: tether.Harness) -> None:
    @th.function(id="digest", trigger=tether.on_event("note"), debounce=tether.Debounce(60))
    def digest(ctx: tether.SyncContext) -> None:
        return None

    th.send(tether.Event("note", {"n": 1}))
    th.send(tether.Event("note", {"n": 2}))
    with TestClient(create_app(th, token="")) as client:
        events = client.get("/api/events?name=note").json()["events"]
        assert len(events) == 2
        decisions = [d["decision"] for e in events for d in e["decisions"]]
        assert any(d.startswith("debounced into run") for d in decisions), events
        html = client.get("/events").text
    assert "debounced into run" in html
    received = events[0]["received_at"]
    shown = datetime.fromtimestamp(received, UTC)
    # the time as the runs page shows times, the exact epoch in the title
    assert f">{shown.strftime('%Y-%m-%d %H:%M:%S')}</time>" in html
    assert f'datetime="{shown.isoformat()}"' in html and f"(epoch {received})" in html
    assert f"<td>{int(received)}</td>" not in html

"""FakeLLMServer itself: scripting, model filters, seeded random faults, counting, shutdown."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tether.errors import ConfigurationError
from tether.testing import FakeLLMServer


def _chat(url: str, text: str, model: str = "m") -> tuple[int, str]:
    status, _, body = _post(
        f"{url}/v1/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": text}]},
    )
    data = json.loads(body)
    return status, data["choices"][0]["message"]["content"] if status == 200 else data["error"][
        "type"
    ]


def _post(url: str, body: dict[str, Any], timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_script_is_consumed_in_order_and_filtered_by_model() -> None:
    with FakeLLMServer() as srv:
        srv.fault("rate_limit", retry_after=3, model="b")
        srv.reply("for a")
        url = f"{srv.url}/v1/chat/completions"
        status, _, body = _post(url, {"model": "a", "messages": []})
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "for a"
        status, headers, _ = _post(url, {"model": "b", "messages": []})
        assert status == 429 and headers["Retry-After"] == "3"
        assert srv.request_count() == 2 and srv.request_count(model="b") == 1
        assert srv.pending() == 0


def test_match_gives_each_conversation_its_own_schedule() -> None:
    with FakeLLMServer() as srv:
        for who in ("ann", "bob"):
            srv.fault("server_error", match=f"<{who}>").reply(f"hi {who}", match=f"<{who}>")
        # interleaved requests: each consumes its own entries, in its own order
        assert _chat(srv.url, "<bob> hello") == (500, "server_error")
        assert _chat(srv.url, "<ann> hello") == (500, "server_error")
        assert _chat(srv.url, "<ann> again") == (200, "hi ann")
        assert _chat(srv.url, "<bob> again") == (200, "hi bob")
        assert _chat(srv.url, "<bob> third")[1] == "Hello from FakeLLMServer."
        assert srv.requests[0].prompt.endswith("<bob> hello")


def test_match_reads_every_wire_format() -> None:
    with FakeLLMServer() as srv:
        srv.fault("auth", match="secret word", times=2)
        status, _, _ = _post(
            f"{srv.url}/v1/messages",
            {
                "model": "c",
                "system": "the secret word",
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert status == 401
        status, _, _ = _post(
            f"{srv.url}/v1beta/models/g:generateContent",
            {"contents": [{"role": "user", "parts": [{"text": "a secret word here"}]}]},
        )
        assert status == 403
        assert srv.pending() == 0


def test_a_script_as_data_matches_the_python_api() -> None:
    with FakeLLMServer() as srv:
        srv.script(
            {
                "script": [
                    {"fault": "rate_limit", "retry_after": 7, "model": "a"},
                    {"reply": "scripted", "match": "please", "times": 2},
                ],
                "default": {"reply": "by default"},
            }
        )
        assert srv.pending() == 3
        status, headers, _ = _post(f"{srv.url}/v1/chat/completions", {"model": "a", "messages": []})
        assert status == 429 and headers["Retry-After"] == "7"
        assert _chat(srv.url, "please") == (200, "scripted")
        assert _chat(srv.url, "other") == (200, "by default")


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ([{"reply": "ok"}, {"fault": "meteor"}], "script entry #2: unknown fault 'meteor'"),
        ([{"reply": "ok", "retry_after": 3}], "unknown key 'retry_after'"),
        ([{"text": "ok"}], 'needs "reply": TEXT or "fault": KIND'),
        ([{"fault": "auth", "times": 0}], "times must be at least 1"),
        ([{"fault": "auth", "times": "2"}], "'times' has the wrong type"),
        ({"scripts": []}, "unknown script key"),
        ("reply", "a JSON list of entries"),
    ],
)
def test_a_bad_script_names_the_problem_and_queues_nothing(schedule: Any, problem: str) -> None:
    with FakeLLMServer() as srv:
        with pytest.raises(ConfigurationError) as info:
            srv.script(schedule)
        assert problem in str(info.value)
        assert srv.pending() == 0


def test_the_admin_endpoints_script_reset_and_list_requests() -> None:
    with FakeLLMServer() as srv:
        status, _, body = _post(f"{srv.url}/_tether/script", [{"fault": "server_error"}])
        assert status == 200 and json.loads(body) == {"pending": 1}
        assert _chat(srv.url, "one") == (500, "server_error")
        status, _, body = _post(f"{srv.url}/_tether/script", [{"fault": "meteor"}])
        assert status == 400 and "unknown fault 'meteor'" in json.loads(body)["error"]["message"]
        with urllib.request.urlopen(f"{srv.url}/_tether/requests", timeout=5) as resp:
            seen = json.loads(resp.read())
        assert [(r["outcome"], r["model"]) for r in seen] == [("server_error", "m")]
        _post(f"{srv.url}/_tether/reset", {})
        assert srv.request_count() == 0


def test_random_faults_are_reproducible_from_the_seed() -> None:
    def outcomes(seed: int) -> list[str]:
        with FakeLLMServer() as srv:
            srv.random_faults(0.5, ["server_error", "overloaded"], seed=seed)
            for _ in range(20):
                _post(f"{srv.url}/v1/chat/completions", {"model": "m", "messages": []})
            return [r.outcome for r in srv.requests]

    first = outcomes(7)
    assert first == outcomes(7)
    assert 3 <= sum(o != "reply" for o in first) <= 17


def test_hanging_requests_end_when_the_server_stops() -> None:
    srv = FakeLLMServer().start()
    srv.fault("hang", hang=60)
    start = time.monotonic()
    with pytest.raises(OSError):
        _post(f"{srv.url}/v1/chat/completions", {"model": "m", "messages": []}, timeout=0.3)
    srv.stop()
    assert time.monotonic() - start < 3


def test_unknown_fault_kind_is_rejected() -> None:
    with FakeLLMServer() as srv, pytest.raises(ConfigurationError, match="rate_limit"):
        srv.fault("meteor")


def test_anthropic_and_gemini_errors_use_their_wire_format() -> None:
    with FakeLLMServer() as srv:
        srv.fault("overloaded").fault("rate_limit", retry_after=12)
        status, _, body = _post(f"{srv.url}/v1/messages", {"model": "claude", "messages": []})
        assert status == 529 and json.loads(body)["error"]["type"] == "overloaded_error"
        status, _, body = _post(
            f"{srv.url}/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []}
        )
        err = json.loads(body)["error"]
        assert status == 429 and err["status"] == "RESOURCE_EXHAUSTED"
        assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"} in err[
            "details"
        ]


def test_a_scripted_tool_call_keeps_its_id_on_the_chat_wire() -> None:
    with FakeLLMServer() as server:
        server.reply("", tool_calls=[{"id": "call_lookup_7", "name": "lookup", "arguments": {}}])
        server.reply("", tool_calls=[{"name": "lookup", "arguments": {}}])
        ids = []
        for _ in range(2):
            _, _, body = _post(
                f"{server.url}/v1/chat/completions",
                {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            ids.append(json.loads(body)["choices"][0]["message"]["tool_calls"][0]["id"])
    assert ids == ["call_lookup_7", "call_0"]  # the scripted id, else call_<i>

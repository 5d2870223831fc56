"""FakeLLMServer itself: scripting, model filters, seeded random faults, counting, shutdown."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tether.testing import FakeLLMServer


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
    with FakeLLMServer() as srv, pytest.raises(ValueError, match="rate_limit"):
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

"""Fixtures of the integration tests: a FakeLLMServer on loopback, and a sandbox whose
worker subprocesses (killed with SIGKILL) run an integration app on a store file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.durable.apps.sandbox import Sandbox
from tether.testing import FakeLLMServer, RecordedRequest, Reply


class AppSandbox(Sandbox):
    """``Sandbox`` whose harness is ``build(url)`` of an integration app."""

    def __init__(self, tmp_path: Path, url: str, harness: Any, fake_url: str) -> None:
        self.dir = tmp_path
        self.db = tmp_path / "tether.db"
        self.url = url
        self.harness = harness
        self.procs = []
        import os

        self.env = {
            **os.environ,
            "TETHER_STORE": url,
            "PYTHONUNBUFFERED": "1",
            "FAKE_LLM_URL": fake_url,
        }


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def tool_results(req: RecordedRequest) -> int:
    """How many tool results a chat-completions or responses request carries."""
    body = req.body
    if "messages" in body:
        return sum(1 for m in body["messages"] if m.get("role") == "tool")
    return sum(
        1
        for item in body.get("input") or []
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    )


def charging_model(tool: str = "charge") -> Any:
    """A scripted model: ``calls=N folder=F gate=G`` in the prompt makes it call ``tool``
    N times, one call per request (call i after i-1 results), then answer ``done N``. The
    reply depends only on the request, so a repeated request is answered the same."""

    def reply(req: RecordedRequest) -> Reply:
        m = re.search(r"calls=(\d+) folder=(\S+) gate=(\d+)", req.prompt)
        if m is None:
            return Reply("no instructions")
        calls, folder, gate = int(m[1]), m[2], int(m[3])
        done = tool_results(req)
        if done >= calls:
            return Reply(f"done {calls}")
        args = {"n": done + 1, "folder": folder, "gate": gate}
        return Reply("", tool_calls=[{"name": tool, "arguments": json.dumps(args)}])

    return reply

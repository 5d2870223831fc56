"""A pydantic-ai agent run by TetherAgent in a worker subprocess, SIGKILLed inside its k-th
tool call, resumes in a new worker: no completed model request is sent again (counted at
the FakeLLMServer) and no completed tool call runs again (counted in files)."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.durable.apps.sandbox import lines, result, wait_for
from tests.integrations.apps import agent_app
from tests.integrations.conftest import AppSandbox, charging_model, tool_results
from tether.testing import FakeLLMServer

CALLS = 6
APP = "tests.integrations.apps.agent_app:th"


@pytest.fixture
def sandbox(tmp_path: Path, fake: FakeLLMServer) -> Iterator[AppSandbox]:
    url = f"sqlite:///{tmp_path / 'tether.db'}"
    harness, _ = agent_app.build(url, fake.url)
    with AppSandbox(tmp_path, url, harness, fake.url) as box:
        yield box


@pytest.mark.parametrize(("function", "k"), [("support", 4), ("support-sync", 2)])
def test_agent_killed_in_a_tool_call_resumes_without_repeating_requests_or_calls(
    sandbox: AppSandbox, fake: FakeLLMServer, function: str, k: int
) -> None:
    fake.set_default(charging_model())
    folder = sandbox.dir
    prompt = f"calls={CALLS} folder={folder} gate={k}"
    handle = sandbox.harness.enqueue(function, {"prompt": prompt})
    first = sandbox.worker(ref=APP)
    wait_for(lambda: len(lines(folder / "begun")) == k, 60, f"tool call {k} to start")
    assert len(lines(folder / "effects")) == k - 1
    assert fake.request_count() == k  # request k asked for call k

    sandbox.kill(first)
    (folder / "release").touch()
    sandbox.worker(ref=APP)
    assert result(sandbox, handle, timeout=60) == f"done {CALLS}"

    # Every model request was sent once: one per number of tool results it carried.
    sent = collections.Counter(tool_results(r) for r in fake.requests)
    assert sent == {i: 1 for i in range(CALLS + 1)}
    # Calls 1..k-1 ran once; call k, cut off by the kill, ran again (at least once); the
    # rest once, and each side effect happened once.
    begun = collections.Counter(line.split()[0] for line in lines(folder / "begun"))
    assert begun == {str(i): 2 if i == k else 1 for i in range(1, CALLS + 1)}
    assert sorted(map(int, lines(folder / "effects"))) == list(range(1, CALLS + 1))
    steps = [s.id for s in sandbox.harness.get_run(handle.run_id).steps]
    assert steps[:3] == ["billing.model", "billing.tool:charge#call_0", "billing.model:1"]
    assert len(steps) == 2 * CALLS + 1

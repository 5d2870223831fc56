"""A pydantic-ai agent run by TetherAgent in a worker subprocess, SIGKILLed inside its k-th
tool call, resumes in a new worker: no completed model request is sent again (counted at
the FakeLLMServer) and no completed tool call runs again (counted in files); an agent whose
history is a context window leaves the window as a run nobody killed does."""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.durable.apps.sandbox import lines, result, wait_for
from tests.integrations.apps import agent_app
from tests.integrations.conftest import AppSandbox, charging_model, tool_results
from tether.testing import FakeLLMServer, RecordedRequest, Reply

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


def turns_model(req: RecordedRequest) -> Reply:
    """``calls=N folder=F gate=G turn=T`` in the newest user message: call ``charge`` N
    times (ids ``tTcI``, unique in a window), one call per request, then answer ``done N``;
    only the tool results after that message count (earlier turns are history)."""
    messages = req.body["messages"]
    start = max(i for i, m in enumerate(messages) if m["role"] == "user")
    m = re.search(r"calls=(\d+) folder=(\S+) gate=(\d+) turn=(\d+)", messages[start]["content"])
    assert m is not None
    calls, folder, gate, turn = int(m[1]), m[2], int(m[3]), int(m[4])
    done = sum(1 for x in messages[start:] if x["role"] == "tool")
    if done >= calls:
        return Reply(f"done {calls}")
    args = json.dumps({"n": done + 1, "folder": folder, "gate": gate})
    return Reply(
        "", tool_calls=[{"id": f"t{turn}c{done + 1}", "name": "charge", "arguments": args}]
    )


def window_items(harness: Any, chat: str) -> list[tuple[str, dict[str, Any]]]:
    items = harness.context(f"chat:{chat}", budget=8000).items()
    return [(i.kind, i.message.model_dump(mode="json")) for i in items if i.message is not None]


@pytest.mark.parametrize(
    ("function", "chat", "k"),
    [("chat", "a", 3), ("chat-sync", "b", 2), ("chat-shared", "shared", 3)],
)
def test_a_killed_agent_run_leaves_its_window_as_an_unkilled_run_does(
    sandbox: AppSandbox, fake: FakeLLMServer, function: str, chat: str, k: int
) -> None:
    fake.set_default(turns_model)
    folder = sandbox.dir
    prompts = [
        f"calls=2 folder={folder} gate=0 turn=1",
        f"calls={CALLS} folder={folder} gate={k} turn=2",
    ]
    handle = sandbox.harness.enqueue(function, {"prompts": prompts, "chat": chat})
    first = sandbox.worker(ref=APP)
    wait_for(lambda: len(lines(folder / "begun")) == 2 + k, 60, f"turn 2's tool call {k}")
    assert len(window_items(sandbox.harness, chat)) == 6  # turn 1 is in the window

    sandbox.kill(first)
    (folder / "release").touch()
    sandbox.worker(ref=APP)
    assert result(sandbox, handle, timeout=60) == f"done {CALLS}"
    unkilled = sandbox.harness.enqueue("chat", {"prompts": prompts, "chat": "ref"})
    assert result(sandbox, unkilled, timeout=60) == f"done {CALLS}"

    # The resumed run replayed turn 1 (its write held, not repeated) and wrote turn 2 once:
    # the same items, in the same order, as the run nobody killed.
    items = window_items(sandbox.harness, chat)
    assert items == window_items(sandbox.harness, "ref")
    assert len(items) == 6 + 2 * CALLS + 2
    ids = [c["id"] for _, m in items for c in m["tool_calls"]]
    assert len(ids) == len(set(ids)) == 2 + CALLS
    keys = [i.key for i in sandbox.harness.context(f"chat:{chat}", budget=8000).items()]
    assert len(set(keys)) == len(keys)
    assert {key.split(":")[-1].split(".")[0] for key in keys} == {"1", "2"}  # two writes
    # Turn 2's first request carried turn 1 from the window; no completed request repeated.
    per_run = 3 + CALLS + 1
    assert fake.request_count() == 2 * per_run
    turn2 = [r for r in fake.requests if "turn=2" in json.dumps(r.body["messages"][-1])]
    assert [m["role"] for m in turn2[0].body["messages"]][1:7] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]

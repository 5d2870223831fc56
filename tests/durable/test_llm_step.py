"""``ctx.step.llm``: an LLM call as a durable step, against FakeLLMServer over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import tether
from tether.testing import FakeLLMServer


class Category(BaseModel):
    label: str


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def test_llm_step_is_memoized_and_parsed_is_typed_on_replay(
    vth: tether.Harness, server: FakeLLMServer
) -> None:
    server.reply('{"label": "billing"}')
    model = f"openai-compatible:{server.url}/v1#tiny"
    seen: list[object] = []

    @vth.function()
    async def triage(ctx: tether.Context) -> str:
        resp = await ctx.step.llm(
            "classify",
            model=model,
            messages=[{"role": "user", "content": "invoice?"}],
            output=Category,
        )
        seen.append(resp.parsed)
        await ctx.step.sleep("cool-off", 600)  # the body runs again: the call is replayed
        return str(resp.parsed.label)

    assert vth.run(triage) == "billing"
    assert server.request_count() == 1
    assert seen == [Category(label="billing"), Category(label="billing")]
    step = vth.get_run(vth.list_runs("triage")[0].id).steps[0]
    assert step.kind == "run" and step.output["usage"]["input_tokens"] > 0


def test_llm_step_retries_inside_the_call_not_the_step(
    th: tether.Harness, server: FakeLLMServer
) -> None:
    server.fault("server_error", times=1).reply("fine")
    model = f"openai-compatible:{server.url}/v1#tiny"

    @th.function()
    def ask(ctx: tether.SyncContext) -> str:
        resp = ctx.step.llm("ask", model=model, messages=[{"role": "user", "content": "x"}])
        return str(resp.text)

    assert th.run(ask) == "fine"
    assert server.request_count() == 2
    step = th.get_run(th.list_runs("ask")[0].id).steps[0]
    assert len(step.attempts) == 1  # one durable attempt; the retry is in the call's record
    assert len(step.output["attempts"]) == 2


APP = """
import os, time
import tether

th = tether.Harness(os.environ["APP_STORE"])

@th.function(id="flow")
async def flow(ctx: tether.Context) -> str:
    resp = await ctx.step.llm("ask", model=os.environ["APP_MODEL"],
                              messages=[{"role": "user", "content": "hi"}])
    def gate() -> str:
        while not os.path.exists(os.environ["APP_GATE"]):
            time.sleep(0.02)
        return "through"
    await ctx.step.run("gate", gate)
    return resp.text
"""


def test_killed_after_the_llm_step_the_model_is_not_called_again(
    tmp_path: Path, server: FakeLLMServer, store_url: str
) -> None:
    server.reply("answer")
    (tmp_path / "llmapp.py").write_text(textwrap.dedent(APP))
    store = store_url
    env = dict(
        os.environ,
        APP_STORE=store,
        APP_MODEL=f"openai-compatible:{server.url}/v1#tiny",
        APP_GATE=str(tmp_path / "gate"),
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    )
    th = tether.Harness(store)
    th.function(id="flow")(lambda ctx: None)  # registered so the store knows the function
    handle = th.enqueue("flow")
    cmd = [sys.executable, "-m", "tether.cli", "worker", "llmapp:th"]
    first = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            steps = {s.id: s.status for s in th.get_run(handle.run_id).steps}
            if steps.get("ask") == "completed":
                break
            time.sleep(0.02)
        assert steps.get("ask") == "completed"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    (tmp_path / "gate").touch()
    second = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert handle.result(timeout=30) == "answer"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert server.request_count() == 1  # the replay used the checkpointed response
    th.close()

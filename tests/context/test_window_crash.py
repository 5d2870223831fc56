"""A worker process killed with SIGKILL inside ``ctx.step.llm(context=...)`` and inside a
compaction resumes on a second worker with the same items and the same build as a run that
was never killed (bench/context_crash.py runs 100 such trials)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tests.context.crash import environment, reference, reply_for, trial
from tether.testing import FakeLLMServer


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        server.set_default(reply_for)
        yield server


def test_sigkill_during_llm_call_and_compaction_then_resume(
    tmp_path: Path, fake: FakeLLMServer
) -> None:
    store = f"sqlite:///{tmp_path / 'crash.db'}"
    env = environment(tmp_path, store, fake)
    expected_output, expected_items = reference(env, tmp_path)
    kinds = {k for _, k, *_ in expected_items}
    assert "summary" in kinds  # the conversation compacts, so a kill can land inside it
    th = tether.Harness(store)
    th.function(id="conv")(lambda ctx: None)  # registered so the store knows the function
    try:
        for k, when in (("a", "llm"), ("b", "compaction")):
            got = trial(th, env, tmp_path, fake, k, when)
            assert got["where"] == when
            assert got["items"] == expected_items, f"killed during {when}"
            assert got["output"] == expected_output, f"killed during {when}"
    finally:
        th.close()

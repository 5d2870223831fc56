"""An experiment killed with SIGKILL halfway and run again continues: finished cases are
not executed again, their model calls included (counted at FakeLLMServer), on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import tether
from tether import evals
from tether.testing import FakeLLMServer

from .conftest import RecordedRequest, Reply, model

CASES = 24
CONCURRENCY = 4

APP = """
import json, os
import tether
from tether import evals

th = tether.Harness(os.environ["EVAL_STORE"])

@th.function()
async def answer(ctx: tether.Context) -> str:
    resp = await ctx.step.llm("answer", model=os.environ["EVAL_MODEL"],
                              messages=[{"role": "user", "content": ctx.event.data["q"]}])
    return resp.text

cases = evals.Dataset([evals.Case({"q": f"question {i}"}, f"answer {i}", id=f"c{i}")
                       for i in range(int(os.environ["EVAL_CASES"]))])
result = evals.run(th, "resume", task=answer, dataset=cases, concurrency=int(os.environ["EVAL_CONC"]),
                   scorers=[evals.judge("Is it right?", model=os.environ["EVAL_JUDGE"]),
                            evals.contains("answer")])
print(json.dumps({"experiment": result.experiment, "completed": result.completed,
                  "judge": result.summary["judge"].mean, "contains": result.summary["contains"].mean}))
th.close()
"""


def replies(request: RecordedRequest) -> Reply:
    prompt = request.body["messages"][-1]["content"]
    if request.model == "judge":
        return Reply(json.dumps({"reason": "ok", "verdict": "pass"}), delay=0.05)
    return Reply(prompt.replace("question", "answer"), delay=0.05)


def question_of(request: RecordedRequest) -> str:
    prompt = request.body["messages"][-1]["content"]
    for line in prompt.splitlines():  # the judge's prompt quotes the input as JSON
        if "question" in line:
            return json.loads(line)["q"] if line.startswith("{") else line
    return prompt


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_killed_experiment_continues_without_repeating_finished_cases(
    tmp_path: Path, server: FakeLLMServer, store_url: str
) -> None:
    server.set_default(replies)
    (tmp_path / "evalapp.py").write_text(textwrap.dedent(APP))
    env = dict(
        os.environ,
        EVAL_STORE=store_url,
        EVAL_MODEL=model(server, "tiny"),
        EVAL_JUDGE=model(server, "judge"),
        EVAL_CASES=str(CASES),
        EVAL_CONC=str(CONCURRENCY),
        TETHER_PROGRESS="0",
    )
    cmd = [sys.executable, str(tmp_path / "evalapp.py")]
    th = tether.Harness(store_url)
    first = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        done: list[tether.Run] = []
        while time.monotonic() < deadline and len(done) < CASES // 2:
            done = th.list_runs(function_id="tether.eval.case", status="completed", limit=500)
            time.sleep(0.01)
        assert len(done) >= CASES // 2, "the experiment did not get halfway"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    finished = {(th.get_run(r.id).input or {})["case"]["input"]["q"] for r in done}
    assert len(finished) < CASES  # killed halfway, not at the end
    [info] = evals.list_experiments(th)
    assert info.status == "running" and info.summary is None

    second = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, timeout=90)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    out = json.loads(second.stdout.decode().strip().splitlines()[-1])
    assert out["experiment"] == info.name and out["completed"] == CASES
    assert out["judge"] == 1.0 and out["contains"] == 1.0

    task_calls = Counter(question_of(r) for r in server.requests if r.model == "tiny")
    judge_calls = Counter(question_of(r) for r in server.requests if r.model == "judge")
    for question in finished:  # finished before the kill: not a single call again
        assert task_calls[question] == 1 and judge_calls[question] == 1, question
    assert len(task_calls) == CASES and len(judge_calls) == CASES
    # only the cases in flight at the kill may have repeated a call
    assert sum(task_calls.values()) <= CASES + CONCURRENCY
    assert sum(judge_calls.values()) <= CASES + CONCURRENCY
    [info] = evals.list_experiments(th)
    assert info.status == "completed" and info.summary is not None
    assert info.summary["completed"] == CASES
    th.close()

"""SIGKILL of a real worker process while a window conversation runs, then a resume on a
second worker: the items and the final build must be those of a run that was never killed.

Shared by ``tests/context/test_window_crash.py`` (a few trials) and
``bench/context_crash.py`` (100). The app below is a conversation of ``APP_TURNS`` turns,
each a ``ctx.step.llm(..., context=window)`` call to a FakeLLMServer that answers after a
short delay (so a kill lands inside the call), in a window small enough that it compacts
with a summarizer that also takes a while (so a kill lands inside a compaction).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tether
from tether.testing import FakeLLMServer, Reply

APP = """
import asyncio, os
import tether
from tether.context import extractive_summarizer

th = tether.Harness(os.environ["APP_STORE"])
MARKER = os.path.join(os.environ["APP_DIR"], "compacting")


async def summarizer(request):
    open(MARKER, "w").close()
    await asyncio.sleep(float(os.environ.get("APP_SUMMARY_DELAY", "0.1")))
    answer = await extractive_summarizer(request)
    os.remove(MARKER)
    return answer


@th.function(id="conv")
async def conv(ctx):
    w = ctx.context("crash:" + ctx.event.data["k"], budget=int(os.environ["APP_BUDGET"]),
                    system="Answer briefly.", summarizer=summarizer)
    await w.pin("order", "ORD-7781 ships to /addr/berlin-10115")
    for turn in range(int(os.environ["APP_TURNS"])):
        await w.add("user", f"Turn {turn}: please check host srv-{turn} and report. "
                    + "detail " * 25)
        await ctx.step.llm("reply", model=os.environ["APP_MODEL"], context=w, max_tokens=32)
    built = await w.build()
    return {"messages": [m.model_dump(mode="json") for m in built.messages],
            "report": built.report.model_dump(mode="json")}
"""

TURN = re.compile(r"Turn (\d+):")


def reply_for(request: Any) -> Reply:
    """A deterministic answer to the newest turn of the prompt, after a short delay."""
    turns = TURN.findall(request.prompt)
    n = turns[-1] if turns else "?"
    return Reply(f"Checked srv-{n}: healthy.", delay=0.08)


def environment(folder: Path, store: str, fake: FakeLLMServer, turns: int = 14) -> dict[str, str]:
    (folder / "window_crash_app.py").write_text(APP)
    return dict(
        os.environ,
        APP_STORE=store,
        APP_DIR=str(folder),
        APP_MODEL=f"openai-compatible:{fake.url}/v1#tiny",
        APP_BUDGET="700",
        APP_TURNS=str(turns),
        PYTHONPATH=os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
    )


def worker(env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "worker", "window_crash_app:th"],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def reference(env: dict[str, str], folder: Path) -> tuple[Any, list[tuple[Any, ...]]]:
    """The output and items of the conversation run once, in this process, never killed."""
    saved = dict(os.environ)
    os.environ.update(env, APP_STORE=f"sqlite:///{folder / 'reference.db'}")
    try:
        spec = importlib.util.spec_from_file_location(
            "window_crash_ref", folder / "window_crash_app.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        th: tether.Harness = module.th
        try:
            out = th.run(module.conv, {"k": "ref"}, timeout=60)
            return out, shape(th, "crash:ref")
        finally:
            th.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def shape(th: tether.Harness, key: str) -> list[tuple[Any, ...]]:
    """What must be the same: each item's seq, kind, text and summary range."""
    return [
        (i.seq, i.kind, i.name, i.content, i.from_seq, i.through_seq, tuple(i.kept))
        for i in th.context(key, budget=700).items()
    ]


def trial(
    th: tether.Harness,
    env: dict[str, str],
    folder: Path,
    fake: FakeLLMServer,
    k: str,
    when: str,
    after: int = 3,
    timeout: float = 40.0,
) -> dict[str, Any]:
    """One run killed once ``when`` holds ("llm": a model request in flight after ``after``
    requests; "compaction": the summarizer running; "any": after ``after`` requests), then
    resumed on a second worker. Returns the run's output, its items and where it was
    killed."""
    marker = folder / "compacting"
    marker.unlink(missing_ok=True)
    handle = th.enqueue("conv", {"k": k})
    base = len(fake.requests)
    first = worker(env, folder)
    where = "finished"
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = fake.requests[base:]
            in_flight = any(r.finished_at == 0.0 for r in sent)
            if when == "compaction" and marker.exists():
                where = "compaction"
                break
            if when in ("llm", "any") and len(sent) > after and (in_flight or when == "any"):
                where = "llm" if in_flight else ("compaction" if marker.exists() else "between")
                break
            if th.get_run(handle.run_id).status == "completed":
                break
            time.sleep(0.005)
        else:
            raise AssertionError(f"the kill point {when!r} was never reached")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = worker(env, folder)
    try:
        out = handle.result(timeout=timeout)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    return {"output": out, "items": shape(th, "crash:" + k), "where": where}

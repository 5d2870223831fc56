"""``tether demo``: the triage app end to end on the embedded store, with a crash."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import tether


def _wait_for(predicate: object, timeout: float) -> bool:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


CATEGORY_WORDS = {
    "billing": ("invoice", "refund", "charge", "payment"),
    "outage": ("down", "error", "500", "timeout"),
    "account": ("password", "login", "email"),
}


def _hosted_model_reply(request: Any) -> Any:
    """The stand-in for a hosted model: a sensible answer when it is up."""
    from tether.testing import Reply

    text = str((request.body.get("messages") or [{}])[-1].get("content", "")).lower()
    category = next(
        (c for c, words in CATEGORY_WORDS.items() if any(w in text for w in words)), "other"
    )
    priority = "high" if category == "outage" else "normal"
    return Reply(json.dumps({"category": category, "priority": priority}))


def _llm_summary(runs: list[Any]) -> dict[str, Any]:
    calls = attempts = failed = 0
    by_model: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    tokens = 0
    cost = 0.0
    for run in runs:
        step = next((s for s in run.steps if s.id == "classify"), None)
        if step is None or not isinstance(step.output, dict):
            continue
        calls += 1
        by_model[step.output["model"]] += 1
        tokens += step.output["usage"]["input_tokens"] + step.output["usage"]["output_tokens"]
        cost += step.output.get("cost_usd") or 0.0
        for attempt in step.output["attempts"]:
            attempts += 1
            if not attempt["ok"]:
                failed += 1
                errors[f"{attempt['error_class']} ({attempt.get('status') or '-'})"] += 1
    return {
        "calls": calls,
        "attempts": attempts,
        "failed": failed,
        "by_model": by_model,
        "errors": errors,
        "tokens": tokens,
        "cost": cost,
    }


def run_demo(tickets: int = 20, store: str | None = None, console: Console | None = None) -> int:
    console = console or Console()
    folder = Path(".tether")
    folder.mkdir(exist_ok=True)
    if store is None:
        db = folder / "demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store = f"sqlite:///{db.resolve()}"
    effects = folder / "demo-effects.txt"
    effects.unlink(missing_ok=True)
    os.environ["TETHER_STORE"] = store
    os.environ["TETHER_DEMO_EFFECTS"] = str(effects.resolve())
    from tether.testing import FakeLLMServer

    hosted = FakeLLMServer().start()
    hosted.set_default(_hosted_model_reply)
    primary = f"openai-compatible:{hosted.url}/v1#hosted-large"
    os.environ["TETHER_DEMO_MODEL"] = primary
    os.environ["TETHER_DEMO_FALLBACKS"] = "local:smollm2-135m"
    from tether.demo.app import th

    started = time.perf_counter()
    console.rule("[bold]tether demo[/]: ticket triage on the embedded store")
    console.print(f"store: {store}")

    # 1. Events in, durable runs out: an LLM step (a hosted model that rate-limits, errors,
    #    then goes down, with the real local model as its fallback), a flaky step, a
    #    durable sleep, a wait for an event.
    texts = ["my invoice is wrong", "site is down with 500", "cannot login", "feature idea"]

    def tickets_between(low: int, high: int) -> list[tether.Event]:
        return [
            tether.Event("ticket.created", {"id": i, "text": texts[i % 4]}, id=f"ticket-{i}")
            for i in range(low, high + 1)
        ]

    hosted.fault("rate_limit", times=2, retry_after=0.3).fault("server_error", times=2)
    healthy = max(1, tickets // 3)
    with th.worker(concurrency=8):
        th.send(tickets_between(1, healthy))
        dup = th.send(tether.Event("ticket.created", {"id": 1, "text": "dup"}, id="ticket-1"))
        console.print(f"sent {healthy} tickets (and one duplicate event id {dup[0]}: ignored)")
        _wait_for(
            lambda: all(
                any(s.id == "classify" for s in th.get_run(r.id).steps)
                for r in th.list_runs("triage", limit=1000)
            ),
            60,
        )
        hosted.fault("unavailable", times=10_000)
        console.print(
            f"the hosted model goes down (503 from now on); sending {tickets - healthy} more"
        )
        th.send(tickets_between(healthy + 1, tickets))
        th.send(
            [
                tether.Event("ticket.replied", {"id": i, "text": "thanks!"})
                for i in range(2, tickets + 1, 2)
            ]
        )
        _wait_for(
            lambda: len(th.list_runs("triage", status="completed", limit=1000)) >= tickets, 300
        )
    runs = [th.get_run(r.id) for r in th.list_runs("triage", limit=1000)]
    completed = [r for r in runs if r.status == "completed"]
    retries = sum(1 for r in runs for s in r.steps for a in s.attempts if a.error_type)
    replied = sum(1 for r in completed if r.output and r.output.get("replied"))
    llm = _llm_summary(runs)
    circuit = th.circuit_breaker.state(primary)
    table = Table("ticket", "category", "priority", "answered by", "CRM retries", "reply", "status")
    for r in sorted(runs, key=lambda r: (r.input or {}).get("id", 0))[:12]:
        out = r.output or {}
        tries = sum(1 for s in r.steps for a in s.attempts if a.error_type)
        table.add_row(
            str((r.input or {}).get("id")),
            out.get("category", ""),
            out.get("priority", ""),
            "local model" if str(out.get("model", "")).startswith("local:") else "hosted model",
            str(tries),
            "yes" if out.get("replied") else "timed out",
            r.status.value,
        )
    console.print(table)

    # 2. A worker process is killed with SIGKILL in the middle of a 10-step run.
    handle = th.enqueue("long-task", {})
    env = dict(os.environ)
    cmd = [sys.executable, "-W", "ignore::ResourceWarning", "-m", "tether.demo.app"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def lines() -> list[str]:
        return effects.read_text().split() if effects.exists() else []

    _wait_for(lambda: len(lines()) >= 4, 30)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_at_kill = len(lines())
    console.print(f"SIGKILL to worker pid {first.pid} after {done_at_kill} of 10 steps")
    killed_at = time.perf_counter()
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        total = handle.result(timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    recovery = time.perf_counter() - killed_at
    counts = collections.Counter(lines())
    twice = [step for step, n in counts.items() if n > 1]
    once = sum(1 for n in counts.values() if n == 1)

    summary = Table(title="what happened", show_header=False)
    summary.add_row("triage runs completed", f"{len(completed)} / {tickets}")
    summary.add_row("retries absorbed (flaky CRM)", str(retries))
    summary.add_row(
        "LLM calls / attempts / failed attempts",
        f"{llm['calls']} / {llm['attempts']} / {llm['failed']}",
    )
    summary.add_row(
        "failed attempts by class", ", ".join(f"{k}: {v}" for k, v in llm["errors"].items()) or "-"
    )
    summary.add_row(
        "answered by model",
        ", ".join(f"{k.split('#')[-1]}: {v}" for k, v in llm["by_model"].items()),
    )
    summary.add_row("hosted model requests (the circuit stops them)", str(hosted.request_count()))
    summary.add_row("circuit breaker on the hosted model", circuit)
    summary.add_row("LLM tokens (local model is free)", f"{llm['tokens']:,}")
    summary.add_row(
        "customer replies received / timed out", f"{replied} / {len(completed) - replied}"
    )
    summary.add_row("crash test: run output", f"{total} (expected 55)")
    summary.add_row(
        "steps not re-executed after the crash",
        f"{done_at_kill - len(twice)} of {done_at_kill} completed before the kill",
    )
    summary.add_row("steps executed again (in flight at the kill)", str(len(twice)))
    summary.add_row("steps executed exactly once", f"{once} of 10")
    summary.add_row("kill to completion on a new worker", f"{recovery:.2f}s")
    summary.add_row("total time", f"{time.perf_counter() - started:.2f}s")
    console.print(summary)
    th.close()
    hosted.stop()
    ok = len(completed) == tickets and total == 55 and len(twice) <= 1
    console.print("[bold green]demo passed[/]" if ok else "[bold red]demo failed[/]")
    return 0 if ok else 1

"""``tether demo``: the triage app end to end on the embedded store, with a crash."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    from tether.demo.app import th

    started = time.perf_counter()
    console.rule("[bold]tether demo[/]: ticket triage on the embedded store")
    console.print(f"store: {store}")

    # 1. Events in, durable runs out: steps, a flaky step, a durable sleep, a wait.
    texts = ["my invoice is wrong", "site is down with 500", "cannot login", "feature idea"]
    with th.worker(concurrency=8):
        th.send(
            [
                tether.Event("ticket.created", {"id": i, "text": texts[i % 4]}, id=f"ticket-{i}")
                for i in range(1, tickets + 1)
            ]
        )
        dup = th.send(tether.Event("ticket.created", {"id": 1, "text": "dup"}, id="ticket-1"))
        console.print(f"sent {tickets} tickets (and one duplicate event id {dup[0]}: ignored)")
        _wait_for(
            lambda: len(th.list_runs("triage", status="waiting", limit=1000)) >= tickets // 2,
            10,
        )
        th.send(
            [
                tether.Event("ticket.replied", {"id": i, "text": "thanks!"})
                for i in range(2, tickets + 1, 2)
            ]
        )
        _wait_for(
            lambda: len(th.list_runs("triage", status="completed", limit=1000)) >= tickets, 30
        )
    runs = [th.get_run(r.id) for r in th.list_runs("triage", limit=1000)]
    completed = [r for r in runs if r.status == "completed"]
    retries = sum(1 for r in runs for s in r.steps for a in s.attempts if a.error_type)
    replied = sum(1 for r in completed if r.output and r.output.get("replied"))
    table = Table("ticket", "category", "priority", "customer", "retries", "reply", "status")
    for r in sorted(runs, key=lambda r: (r.input or {}).get("id", 0))[:8]:
        out = r.output or {}
        tries = sum(1 for s in r.steps for a in s.attempts if a.error_type)
        table.add_row(
            str((r.input or {}).get("id")),
            out.get("category", ""),
            out.get("priority", ""),
            out.get("customer", ""),
            str(tries),
            "yes" if out.get("replied") else "timed out",
            r.status.value,
        )
    console.print(table)

    # 2. A worker process is killed with SIGKILL in the middle of a 10-step run.
    handle = th.enqueue("long-task", {})
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "tether.demo.app"]
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
    ok = len(completed) == tickets and total == 55 and len(twice) <= 1
    console.print("[bold green]demo passed[/]" if ok else "[bold red]demo failed[/]")
    return 0 if ok else 1

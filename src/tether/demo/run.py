"""``tether demo``: the support agent end to end on the embedded store.

The driver (this process) plays the customers and the human approver and runs the two
loopback servers: the hosted model (FakeLLMServer, scripted, with faults) and the payments
API. The agent runs in worker subprocesses: the first is killed with SIGKILL in the middle
of a refund, the second takes over. At the end: what happened, the runs audit, an eval of
the answers and the command to open the dashboard on the same store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

import tether


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"the demo waited {timeout:.0f}s for {what}")


@dataclass
class Scene:
    """What the driver saw, for the report."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    kill: dict[str, Any] = field(default_factory=dict)
    cancelled: dict[str, Any] = field(default_factory=dict)
    forgotten: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


class Driver:
    def __init__(self, th: tether.Harness, console: Console, env: dict[str, str]) -> None:
        self.th = th
        self.console = console
        self.env = env
        self.scene = Scene()
        self.worker: subprocess.Popen[bytes] | None = None

    # -------------------------------------------------------------- workers

    def start_worker(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-W", "ignore::ResourceWarning", "-m", "tether.demo.agent"]
        self.worker = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.worker = None

    def kill_worker(self) -> int:
        assert self.worker is not None
        pid = self.worker.pid
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()
        self.worker = None
        return pid

    # -------------------------------------------------------------- customers

    def say(self, conversation: str, customer: str, text: str) -> str:
        n = sum(1 for m in self.scene.messages if m["conversation_id"] == conversation) + 1
        message_id = f"{conversation}#{n}"
        data = {
            "conversation_id": conversation,
            "customer": customer,
            "subject": f"customer:{customer}",
            "message_id": message_id,
            "text": text,
        }
        self.th.send(tether.Event("customer.message", data, id=f"msg:{message_id}"))
        self.scene.messages.append(data)
        self.console.print(f"[bold]{customer}[/] ({conversation}): {text}")
        return message_id

    def reply_run(self, message_id: str) -> Any:
        for r in self.th.list_runs("support-reply", limit=100):
            if (r.input or {}).get("message_id") == message_id:
                return r
        return None

    def wait_reply(self, message_id: str, timeout: float = 90) -> Any:
        def done() -> Any:
            r = self.reply_run(message_id)
            return r if r is not None and r.status.value in ("completed", "failed") else None

        run = wait_for(done, timeout, f"the reply to {message_id}")
        if run.status.value == "failed":
            error = run.error or {}
            raise RuntimeError(f"the reply to {message_id} failed: {error.get('message')}")
        out = run.output or {}
        who = "local model" if str(out.get("model", "")).startswith("local:") else "hosted model"
        self.console.print(f"  [cyan]agent[/] ({who}): {out.get('reply', run.error)}")
        self.scene.answers[message_id] = {**out, "run_id": run.id, "status": run.status.value}
        return run

    def refund_run(self, refund_id: str) -> Any:
        for r in self.th.list_runs("refund", limit=100):
            if (r.input or {}).get("refund_id") == refund_id:
                return r
        return None


def run_demo(store: str | None = None, console: Console | None = None) -> int:
    console = console or Console()
    started = time.perf_counter()
    folder = Path(".tether")
    folder.mkdir(exist_ok=True)
    if store is None:
        db = folder / "demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store = f"sqlite:///{db.resolve()}"

    from tether.demo.brain import HostedBrain
    from tether.demo.payments import PaymentsServer
    from tether.demo.shop import POLICY_AGENT_SYSTEM
    from tether.testing import FakeLLMServer

    brain = HostedBrain()
    hosted = FakeLLMServer().start()
    hosted.set_default(brain)
    # The policy desk's first call meets a rate limit and then a server error; its retries
    # (on the hosted model: it has no fallback) absorb both.
    desk = POLICY_AGENT_SYSTEM[:40]
    hosted.fault("rate_limit", match=desk, retry_after=0.5).fault("server_error", match=desk)
    pay = PaymentsServer().start()
    hosted_model = f"openai-compatible:{hosted.url}/v1#hosted-large"
    env = {
        **os.environ,
        "TETHER_STORE": store,
        "TETHER_DEMO_HOSTED": hosted_model,
        "TETHER_DEMO_PAYMENTS": pay.url,
        "TETHER_DEMO_LOCAL": os.environ.get("TETHER_DEMO_LOCAL", "local:smollm2-135m"),
    }
    os.environ.update({k: env[k] for k in ("TETHER_STORE", "TETHER_DEMO_HOSTED")})
    os.environ["TETHER_DEMO_PAYMENTS"] = pay.url
    from tether.demo.agent import th

    if th.list_runs(limit=1):
        console.print(
            f"[bold red]demo failed[/]: the store {store} already holds runs; the demo needs an "
            "empty one (leave --store out for a fresh .tether/demo.db)"
        )
        hosted.stop()
        pay.stop()
        return 1
    d = Driver(th, console, env)
    console.rule("[bold]tether demo[/]: a support agent on the embedded store")
    console.print(f"store: {store}")
    console.print(
        f"hosted model: {hosted_model} (FakeLLMServer, scripted); fallback: {env['TETHER_DEMO_LOCAL']}"
    )
    try:
        first = d.start_worker()
        console.print(f"worker 1: pid {first.pid} (python -m tether.demo.agent)")

        # 1. An order question (the order database times out once; the step retries).
        m = d.say(
            "conv-ada-1", "ada", "Hi! Where is my order A-1001? I prefer email, never phone calls."
        )
        d.wait_reply(m)

        # 2. A small refund; the worker is SIGKILLed while the payments API is answering.
        pay.hold("B-2002")
        m = d.say(
            "conv-ben-1",
            "ben",
            "My glass teapot, order B-2002, arrived broken. Can I get a refund?",
        )
        wait_for(lambda: pay.held.is_set(), 60, "the refund to reach the payments API")
        pid = d.kill_worker()
        killed_at = time.perf_counter()
        console.print(
            f"[red]SIGKILL[/] to worker pid {pid}: the payments API recorded refund R-B-2002 but "
            "the worker died before it heard back"
        )
        pay.release()
        second = d.start_worker()
        console.print(f"worker 2: pid {second.pid} takes over once the lease expires")
        d.wait_reply(m)
        d.scene.kill = {"pid": pid, "recovery_s": time.perf_counter() - killed_at}

        # 3. A large refund waits for a human; the customer writes again while the reply is
        #    still being written: that reply is cancelled, the refund is not.
        brain.slow("never arrived", 20.0)
        m1 = d.say(
            "conv-cy-1", "cy", "My standing desk, order C-3003, never arrived. Please refund it."
        )
        wait_for(
            lambda: any(
                "never arrived" in r.prompt
                and "waiting for approval" in r.prompt
                and not r.finished_at
                for r in hosted.requests
            ),
            60,
            "the stale reply to be in the writing",
        )
        m2 = d.say("conv-cy-1", "cy", "Also, how long do refunds take?")
        d.wait_reply(m2)
        stale = d.reply_run(m1)
        stale = th.get_run(stale.id)
        refund_c = wait_for(lambda: d.refund_run("R-C-3003"), 30, "the refund run")
        d.scene.cancelled = {
            "run_id": stale.id,
            "status": stale.status.value,
            "reason": getattr(stale, "reason", None),
            "refund_status": th.get_run(refund_c.id).status.value,
        }
        console.print(
            f"  the stale reply (run {stale.id}) is {stale.status.value}; refund R-C-3003 is "
            f"{d.scene.cancelled['refund_status']} (waiting for a human)"
        )
        console.print("[bold]sam[/] (human): approves refund R-C-3003")
        th.send(
            tether.Event(
                "refund.approved", {"refund_id": "R-C-3003", "approved": True, "by": "sam"}
            )
        )
        wait_for(
            lambda: th.get_run(refund_c.id).status.value == "completed", 60, "the approved refund"
        )

        # 4. A customer shares a fact, then asks to be forgotten.
        m = d.say("conv-dee-1", "dee", "Where is order D-4004? I'm moving to Lisbon next month.")
        d.wait_reply(m)
        d.say("conv-dee-1", "dee", "Please forget everything about me.")
        forget_run = wait_for(
            lambda: next(
                (
                    r
                    for r in th.list_runs("forget-customer", limit=10)
                    if r.status.value == "completed"
                ),
                None,
            ),
            60,
            "the customer to be forgotten",
        )
        d.scene.forgotten = dict(forget_run.output or {})
        counts = d.scene.forgotten.get("forgotten") or {}
        console.print(
            "  [cyan]agent[/] (hosted model) called forget_me: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + " deleted (this reply's run among them)"
        )

        # 5. A returning customer: her window is new, her long-term memory is not.
        m = d.say("conv-ada-2", "ada", "Hi again! Will you phone me when my grinder arrives?")
        d.wait_reply(m)

        # 6. The hosted model goes down: the local model answers, and says so.
        hosted.fault("unavailable", times=1_000_000)
        console.print("[red]the hosted model goes down[/] (503 from now on)")
        m = d.say("conv-ben-2", "ben", "Thanks! When will the money be back on my card?")
        d.wait_reply(m, timeout=120)
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[bold red]demo failed[/]: {exc}")
        return 1
    finally:
        d.stop_worker()
        hosted.stop()
        pay.stop()

    from tether.demo.report import report

    ok = report(th, d, pay, hosted, hosted_model, console)
    console.print(f"total time: {time.perf_counter() - started:.1f}s")
    console.print(
        f"open the dashboard on this store: [bold]tether dev tether.demo.agent:th --store {store}[/]"
    )
    th.close()
    console.print("[bold green]demo passed[/]" if ok else "[bold red]demo failed[/]")
    return 0 if ok else 1

"""A pydantic-ai agent doing 20 tool calls against a loopback model (FakeLLMServer): the bare
agent, tether's TetherAgent and pydantic-ai's DBOSAgent (DBOS on SQLite), in one run.

    PYTHONPATH=src /work/bench-venv/bin/python bench/integrations.py [--runs 5]

Prints the wall time of one agent run (21 model requests + 20 tool calls = 41 durable units),
the overhead per unit against the bare agent, and, with a SIGKILL at the 10th tool call, the
time from the restart to completion and the model requests sent again (counted at the
server: a request is identified by how many tool results it carries). Each variant runs in a
subprocess of its own (``child`` mode), so the kill is real.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CALLS = 20
UNITS = 2 * CALLS + 1
KILL_AT = 10


# -- the child: one variant, one or more agent runs ------------------------------------------
def build_agent(url: str, folder: Path, kill_at: int) -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(
        "gpt-4.1-mini", provider=OpenAIProvider(base_url=f"{url}/v1", api_key="sk-fake")
    )
    agent = Agent(model, name="bench")

    @agent.tool_plain
    def work(n: int) -> str:
        marker = folder / "killed"
        if n == kill_at and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        with open(folder / "effects", "a") as f:
            f.write(f"{n}\n")
        return f"done {n}"

    return agent


def child(variant: str, url: str, folder: Path, runs: int, kill_at: int) -> None:
    import asyncio

    agent = build_agent(url, folder, kill_at)
    times: list[float] = []
    if variant == "bare":
        for i in range(runs):
            t0 = time.perf_counter()
            agent.run_sync(f"calls={CALLS} run={i}")
            times.append(time.perf_counter() - t0)
    elif variant == "tether":
        import tether
        from tether.integrations.pydantic_ai import TetherAgent

        th = tether.Harness(f"sqlite:///{folder / 'tether.db'}", lease_ttl=1.0, heartbeat=0.25)
        durable = TetherAgent(agent, harness=th)
        for i in range(runs):
            t0 = time.perf_counter()
            durable.run_sync(f"calls={CALLS} run={i}", run_id=f"bench-{i}")
            times.append(time.perf_counter() - t0)
        th.close()
    else:
        from dbos import DBOS, SetWorkflowID
        from pydantic_ai.durable_exec.dbos import DBOSAgent

        DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{folder / 'dbos.sqlite'}"})
        durable = DBOSAgent(agent, name="bench")
        DBOS.launch()
        for i in range(runs):
            t0 = time.perf_counter()
            if (folder / "killed").exists():  # recovery runs the pending workflow: wait for it
                DBOS.retrieve_workflow(f"bench-{i}").get_result()
            else:
                with SetWorkflowID(f"bench-{i}"):
                    asyncio.run(durable.run(f"calls={CALLS} run={i}"))
            times.append(time.perf_counter() - t0)
        DBOS.destroy()
    print(json.dumps(times))


# -- the parent -------------------------------------------------------------------------------
def tool_results(body: dict[str, Any]) -> int:
    return sum(1 for m in body.get("messages", []) if m.get("role") == "tool")


def start_server() -> Any:
    from tether.testing import FakeLLMServer, Reply

    def reply(req: Any) -> Any:
        m = re.search(r"calls=(\d+) run=(\d+)", req.prompt)
        calls = int(m[1]) if m else 0
        done = tool_results(req.body)
        if done >= calls:
            return Reply(f"finished {calls}")
        return Reply("", tool_calls=[{"name": "work", "arguments": {"n": done + 1}}])

    return FakeLLMServer().start().set_default(reply)


def run_child(variant: str, url: str, folder: Path, runs: int, kill_at: int) -> tuple[int, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, __file__, "child", variant, url, str(folder), str(runs), str(kill_at)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    out = done.stdout.strip().splitlines()
    return done.returncode, json.loads(out[-1]) if done.returncode == 0 and out else done.stderr[
        -2000:
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = start_server()
    rows = {}
    for variant in ("bare", "tether", "dbos"):
        with tempfile.TemporaryDirectory() as tmp:
            code, times = run_child(variant, server.url, Path(tmp), args.runs, kill_at=0)
            if code != 0:
                raise SystemExit(f"{variant} failed:\n{times}")
            rows[variant] = statistics.median(times[1:] if len(times) > 1 else times)
    print(f"pydantic-ai agent, {CALLS} tool calls ({UNITS} units), median of {args.runs} runs")
    for variant, wall in rows.items():
        extra = (wall - rows["bare"]) / UNITS * 1e6
        print(f"  {variant:7s} {wall * 1000:8.1f} ms/run   overhead {extra:8.1f} us/unit")
    tether_over = (rows["tether"] - rows["bare"]) / UNITS
    dbos_over = (rows["dbos"] - rows["bare"]) / UNITS
    if dbos_over > 0:
        print(f"  tether overhead / DBOS overhead: {tether_over / dbos_over:.3f} (target <= 0.1)")

    print(f"SIGKILL at tool call {KILL_AT}, then a restart:")
    for variant in ("tether", "dbos"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            before = len(server.requests)
            code, _ = run_child(variant, server.url, folder, 1, kill_at=KILL_AT)
            assert code == -signal.SIGKILL, f"{variant}: the child was not killed ({code})"
            t0 = time.perf_counter()
            code, times = run_child(variant, server.url, folder, 1, kill_at=KILL_AT)
            elapsed = time.perf_counter() - t0
            if code != 0:
                raise SystemExit(f"{variant} recovery failed:\n{times}")
            sent = collections.Counter(tool_results(r.body) for r in server.requests[before:])
            repeated = sum(n - 1 for n in sent.values())
            effects = (folder / "effects").read_text().split()
            print(
                f"  {variant:7s} restart to completion {elapsed:6.2f} s (process start "
                f"included; in process {times[0]:.2f} s), model requests repeated: {repeated}, "
                f"tool side effects: {len(effects)} for {CALLS} calls"
            )
    server.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()

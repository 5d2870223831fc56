"""An evaluation of 1,000 cases on a loopback model: tether against pydantic-evals and
DeepEval, measured in one run.

Workload: each case asks a model on loopback (FakeLLMServer, OpenAI wire, 50 ms per reply)
one question through the OpenAI protocol and scores the answer with an exact match against
the expected one (one case in ten is answered wrong, so the mean is 0.9); 8 cases in flight.
Systems, each in a child process of its own:

- ``tether``: ``evals.run`` with the task a registered function making a ``ctx.step.llm``
  call (each case a durable run with its task run, on a fresh SQLite file);
- ``tether-plain``: the same with the task a plain ``async def`` calling ``tether.llm``;
- ``pydantic-evals``: ``Dataset.evaluate`` with ``EqualsExpected``, the task an ``AsyncOpenAI``
  call (from /work/bench-venv);
- ``deepeval``: the task run with 8 in flight, then ``deepeval.evaluate`` with
  ``ExactMatchMetric`` (telemetry off; from /work/bench-venv).

Figures: wall time of the evaluation (the child times it, imports excluded), peak RSS, and the
RSS the parent samples from /proc while the cases complete (flat memory: the RSS at 20% of the
cases against the RSS at the end). Then crash recovery: the same evaluation SIGKILLed once half
of the model calls are made and run again; the model calls in all, counted at the server
(tether's target: <= cases + concurrency; the peers start over).

    python bench/evals.py [--cases 1000] [--concurrency 8] [--latency 0.05]
                          [--systems tether,tether-plain,pydantic-evals,deepeval] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
BENCH_VENV = Path(os.environ.get("BENCH_VENV", "/work/bench-venv")) / "bin" / "python"
PEERS = ("pydantic-evals", "deepeval")


PAD = int(os.environ.get("BENCH_PAD", "0"))  # bytes of padding in each answer (memory phase)


def question(i: int) -> str:
    return f"question {i}"


def expected(i: int) -> str:
    return f"answer {i}" + " " * PAD


# ---------------------------------------------------------------------------------------------
# Children: one evaluation each; print {"wall_s", "peak_rss_mb", "mean"} as the last line.


def child_tether(url: str, cases: int, conc: int, store: str, plain: bool) -> dict[str, Any]:
    import tether
    import tether.llm
    from tether import evals

    th = tether.Harness(f"sqlite:///{store}")
    llm = f"openai-compatible:{url}/v1#bench"

    @th.function()
    async def answer(ctx: tether.Context) -> str:
        resp = await ctx.step.llm(
            "answer", model=llm, messages=[{"role": "user", "content": ctx.event.data["q"]}]
        )
        return str(resp.text)

    async def plain_answer(value: dict[str, str]) -> str:
        resp = await tether.llm.acomplete(llm, [{"role": "user", "content": value["q"]}])
        return str(resp.text)

    data = evals.Dataset(
        [evals.Case({"q": question(i)}, expected(i), id=str(i)) for i in range(cases)]
    )
    started, cpu = time.perf_counter(), _cpu()
    result = evals.run(
        th,
        "bench",
        task=plain_answer if plain else answer,
        dataset=data,
        scorers=[evals.exact()],
        concurrency=conc,
        progress=False,
    )
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    th.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "mean": result.summary["exact"].mean,
        "completed": result.completed,
    }


def _client(url: str) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-bench", max_retries=0)


def child_pydantic_evals(url: str, cases: int, conc: int) -> dict[str, Any]:
    from pydantic_evals import Case, Dataset
    from pydantic_evals.evaluators import EqualsExpected

    client = _client(url)

    async def task(inputs: str) -> str:
        resp = await client.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": inputs}]
        )
        return resp.choices[0].message.content or ""

    data = Dataset(
        name="bench",
        cases=[
            Case(name=str(i), inputs=question(i), expected_output=expected(i)) for i in range(cases)
        ],
        evaluators=[EqualsExpected()],
    )
    started, cpu = time.perf_counter(), _cpu()
    report = data.evaluate_sync(task, max_concurrency=conc, progress=False)
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    passed = [c.assertions["EqualsExpected"].value for c in report.cases]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "mean": sum(passed) / len(passed),
        "completed": len(report.cases),
    }


def child_deepeval(url: str, cases: int, conc: int) -> dict[str, Any]:
    os.environ["DEEPEVAL_TELEMETRY_OPT_OUT"] = "YES"
    from deepeval import evaluate
    from deepeval.evaluate.configs import AsyncConfig, DisplayConfig
    from deepeval.metrics import ExactMatchMetric
    from deepeval.test_case import LLMTestCase

    client = _client(url)

    async def outputs() -> list[str]:
        slots = asyncio.Semaphore(conc)

        async def one(i: int) -> str:
            async with slots:
                resp = await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": question(i)}]
                )
                return resp.choices[0].message.content or ""

        return list(await asyncio.gather(*(one(i) for i in range(cases))))

    started, cpu = time.perf_counter(), _cpu()
    answers = asyncio.run(outputs())
    tests = [
        LLMTestCase(input=question(i), actual_output=answers[i], expected_output=expected(i))
        for i in range(cases)
    ]
    result = evaluate(
        tests,
        metrics=[ExactMatchMetric()],
        async_config=AsyncConfig(max_concurrent=conc),
        display_config=DisplayConfig(print_results=False, show_indicator=False),
    )
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    passed = [r.success for r in result.test_results]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "mean": sum(passed) / len(passed),
        "completed": len(passed),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(args: argparse.Namespace) -> None:
    if args.child == "tether":
        out = child_tether(args.url, args.cases, args.concurrency, args.store, plain=False)
    elif args.child == "tether-plain":
        out = child_tether(args.url, args.cases, args.concurrency, args.store, plain=True)
    elif args.child == "pydantic-evals":
        out = child_pydantic_evals(args.url, args.cases, args.concurrency)
    else:
        out = child_deepeval(args.url, args.cases, args.concurrency)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# The parent: the loopback model, the children, the samples.


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Model:
    """FakeLLMServer answering "answer i" to "question i" (one in ten wrong) after a delay."""

    def __init__(self, latency: float) -> None:
        try:  # tether.testing exports the wire types once FakeLLMServer lives there
            from tether.testing import FakeLLMServer, RecordedRequest, Reply
        except ImportError:
            from tether.llm.fake_server import FakeLLMServer, RecordedRequest, Reply

        def reply(request: RecordedRequest) -> Reply:
            messages = request.body.get("messages") or [{"content": "unexpected -1"}]
            n = int(str(messages[-1]["content"]).rsplit(" ", 1)[-1])
            text = "wrong" if n % 10 == 0 else expected(n)
            return Reply(text, delay=latency) if latency else Reply(text)

        self.server = FakeLLMServer().start()
        self.server.set_default(reply)

    @property
    def calls(self) -> int:
        return self.server.request_count()

    def unexpected(self) -> list[str]:
        return sorted(
            {f"{r.path} {sorted(r.body)}" for r in self.server.requests if r.wire != "chat"}
        )


def _command(system: str, url: str, cases: int, conc: int, store: Path) -> list[str]:
    python = str(BENCH_VENV) if system in PEERS else sys.executable
    return [
        python,
        str(HERE),
        "--child",
        system,
        "--url",
        url,
        "--cases",
        str(cases),
        "--concurrency",
        str(conc),
        "--store",
        str(store),
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ, DEEPEVAL_TELEMETRY_OPT_OUT="YES", TETHER_PROGRESS="0")
    env["BENCH_PAD"] = str(PAD)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def measure(system: str, model: Model, cases: int, conc: int, folder: Path) -> dict[str, Any]:
    """One full evaluation, with RSS sampled against the model calls made so far."""
    store = folder / f"{system}.db"
    start_calls = model.calls
    proc = subprocess.Popen(
        _command(system, model.server.url, cases, conc, store),
        env=_env(),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[int, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            rss = _rss_mb(proc.pid)
            if rss is not None:
                samples.append((model.calls - start_calls, rss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=1800)
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        return {"system": system, "error": err.strip().splitlines()[-5:]}
    result = json.loads(out.strip().splitlines()[-1])
    result["system"] = system
    result["calls"] = model.calls - start_calls

    def rss_at(share: float) -> float | None:
        target = share * cases
        found = [rss for done, rss in samples if done >= target]
        return found[0] if found else None

    result["rss_at_20pct_mb"] = rss_at(0.2)
    result["rss_at_end_mb"] = max((rss for _, rss in samples), default=None)
    return result


def kill_and_resume(
    system: str, model: Model, cases: int, conc: int, folder: Path
) -> dict[str, Any]:
    """SIGKILL once half the model calls are made, run again; model calls in all."""
    store = folder / f"{system}-resume.db"
    command = _command(system, model.server.url, cases, conc, store)
    start_calls = model.calls
    proc = subprocess.Popen(
        command, env=_env(), cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 900
    while model.calls - start_calls < cases // 2 and time.monotonic() < deadline:
        if proc.poll() is not None:
            return {"system": system, "error": "finished before it could be killed"}
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = model.calls - start_calls
    rerun = subprocess.run(
        command, env=_env(), cwd=folder, capture_output=True, text=True, timeout=1800
    )
    if rerun.returncode != 0:
        return {"system": system, "error": rerun.stderr.strip().splitlines()[-5:]}
    result = json.loads(rerun.stdout.strip().splitlines()[-1])
    return {
        "system": system,
        "killed_after_calls": killed_at,
        "calls_in_all": model.calls - start_calls,
        "rerun_wall_s": result["wall_s"],
        "completed": result["completed"],
        "mean": result["mean"],
    }


def _print_run(row: dict[str, Any]) -> None:
    if "error" in row:
        print(f"{row['system']}: failed: {row['error']}")
        return
    print(
        f"{row['system']:15} wall {row['wall_s']:6.2f} s  CPU {row['cpu_s']:6.2f} s  peak RSS "
        f"{row['peak_rss_mb']:6.1f} MB  RSS at 20% of the cases {_mb(row['rss_at_20pct_mb'])}"
        f", at the end {_mb(row['rss_at_end_mb'])}  calls {row['calls']}  "
        f"mean {row['mean']:.3f}"
    )


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MB"


def _available(system: str) -> str | None:
    if system not in PEERS:
        return None
    if not BENCH_VENV.exists():
        return f"{BENCH_VENV} does not exist"
    module = {"pydantic-evals": "pydantic_evals", "deepeval": "deepeval"}[system]
    probe = subprocess.run([str(BENCH_VENV), "-c", f"import {module}, openai"], capture_output=True)
    return None if probe.returncode == 0 else f"{module} is not installed in {BENCH_VENV}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--systems", default="tether,tether-plain,pydantic-evals,deepeval")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--memory-cases",
        type=int,
        default=10_000,
        help="cases of the memory phase (0: skip it); answers padded to --memory-pad bytes",
    )
    parser.add_argument("--memory-pad", type=int, default=2000)
    parser.add_argument("--memory-systems", default="tether,pydantic-evals")
    parser.add_argument("--phases", default="run,resume,memory")
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--store", default="")
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    sys.path.insert(0, str(ROOT / "src"))
    model = Model(args.latency)
    folder = Path(tempfile.mkdtemp(prefix="tether-bench-evals-"))
    report: dict[str, Any] = {
        "cases": args.cases,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "ideal_wall_s": args.cases * args.latency / args.concurrency,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "runs": [],
        "resume": [],
    }
    print(
        f"{args.cases} cases, {args.concurrency} in flight, {args.latency * 1000:.0f} ms per "
        f"model call: the ideal is {report['ideal_wall_s']:.2f} s"
    )
    phases = args.phases.split(",")
    try:
        for system in args.systems.split(",") if "run" in phases else []:
            why = _available(system)
            if why:
                print(f"{system}: skipped ({why})")
                report["runs"].append({"system": system, "skipped": why})
                continue
            row = measure(system, model, args.cases, args.concurrency, folder)
            report["runs"].append(row)
            _print_run(row)
        for system in args.systems.split(",") if "resume" in phases else []:
            if _available(system):
                continue
            row = kill_and_resume(system, model, args.cases, args.concurrency, folder)
            report["resume"].append(row)
            if "error" in row:
                print(f"{system} resume: failed: {row['error']}")
                continue
            print(
                f"{system:15} killed after {row['killed_after_calls']} calls; model calls in all "
                f"{row['calls_in_all']} (rerun {row['rerun_wall_s']:.2f} s, "
                f"{row['completed']} results, mean {row['mean']:.3f})"
            )
        if "memory" in phases and args.memory_cases:
            global PAD
            PAD = args.memory_pad
            print(
                f"memory: {args.memory_cases} cases whose answers are {args.memory_pad} bytes, "
                "no model latency"
            )
            fast = Model(0.0)
            try:
                report["memory"] = []
                for system in args.memory_systems.split(","):
                    if _available(system):
                        continue
                    row = measure(system, fast, args.memory_cases, args.concurrency, folder)
                    report["memory"].append(row)
                    _print_run(row)
            finally:
                fast.server.stop()
        if model.unexpected():
            print(f"requests other than chat completions: {model.unexpected()}")
    finally:
        model.server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Cost of tracing, and dashboard server time with a large store, measured in one run.

1. Tracing off versus on (OpenTelemetry SDK, BatchSpanProcessor into an in-memory exporter),
   in the same process, interleaved round by round, best round kept, in CPU time:
   - a 10-step run whose steps each do 1 ms of work (target: under 20% added);
   - a 10-step run of trivial steps: added time per span (21 spans a run: the run, 10 steps,
     10 attempts; target: under 15 µs a span).
2. Dashboard: a SQLite store filled with N runs (default 100,000; rows written directly, in
   one transaction), then server time (in-process ASGI, no network) of the runs list (first
   page, a filtered page, a deep page) and of a run page (target: p95 under 100 ms).

    python bench/observe.py [--runs N] [--stored N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS = 10
# Tracing figures are CPU time of this process (spans, the batch processor's thread and
# the store), not wall time: on a shared machine wall time moves with the other jobs.
CLOCK = time.process_time
SPANS_PER_RUN = 1 + 2 * STEPS


def _work_1ms() -> int:
    end = CLOCK() + 0.001
    while CLOCK() < end:
        pass
    return 1


def _trivial() -> int:
    return 1


def tracing(runs: int, rounds: int) -> dict[str, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import tether
    from tether.observe import instrument

    folder = Path(tempfile.mkdtemp(prefix="tether-bench-observe-"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000))

    def make(name: str, traced: bool) -> tuple[Any, Any, Any]:
        th = tether.Harness(f"sqlite:///{folder / name}.db", durability="process")

        @th.function(id="work")
        def work(ctx: tether.SyncContext) -> int:
            return sum(ctx.step.run(f"s{i}", _work_1ms) for i in range(STEPS))

        @th.function(id="trivial")
        def trivial(ctx: tether.SyncContext) -> int:
            return sum(ctx.step.run(f"s{i}", _trivial) for i in range(STEPS))

        if traced:
            instrument(th, tracer_provider=provider)
        return th, work, trivial

    off, on = make("off", False), make("on", True)
    results: dict[str, dict[str, list[float]]] = {
        "work": {"off": [], "on": []},
        "trivial": {"off": [], "on": []},
    }
    for th, *_fns in (off, on):  # warm-up
        for fn in _fns:
            for _ in range(5):
                th.run(fn)
    floors: list[float] = []
    shaped: list[float] = []
    for _ in range(rounds):
        floors.append(_sdk_floor(provider, 5_000, 1))  # side by side: the SDK alone
        shaped.append(_sdk_same_spans(provider))
        for kind, index in (("work", 1), ("trivial", 2)):
            for label, bundle in (("off", off), ("on", on)):
                th, fn = bundle[0], bundle[index]
                n = runs if kind == "trivial" else max(10, runs // 5)
                start = CLOCK()
                for _ in range(n):
                    th.run(fn)
                results[kind][label].append((CLOCK() - start) / n)
    provider.force_flush()
    spans = len(exporter.get_finished_spans())
    for bundle in (off, on):
        bundle[0].close()
    floor = min([_sdk_floor(provider), *floors])
    best = {k: {lbl: min(v) for lbl, v in d.items()} for k, d in results.items()}
    work_added = best["work"]["on"] / best["work"]["off"] - 1
    per_span = (best["trivial"]["on"] - best["trivial"]["off"]) / SPANS_PER_RUN
    return {
        "work_run_off_ms": best["work"]["off"] * 1e3,
        "work_run_on_ms": best["work"]["on"] * 1e3,
        "work_added_pct": work_added * 100,
        "trivial_run_off_ms": best["trivial"]["off"] * 1e3,
        "trivial_run_on_ms": best["trivial"]["on"] * 1e3,
        "per_span_us": per_span * 1e6,
        "sdk_span_floor_us": floor * 1e6,
        "per_span_vs_sdk": per_span / floor,
        "sdk_same_spans_us": min(shaped) * 1e6,
        "per_span_vs_sdk_same_spans": per_span / min(shaped),
        "spans_exported": spans,
    }


def _sdk_floor(provider: Any, n: int = 20_000, repeats: int = 3) -> float:
    """Seconds per span of the OpenTelemetry SDK alone (start + end, one attribute, a parent),
    the floor under any instrumentation on this machine."""
    from opentelemetry import trace

    tracer = provider.get_tracer("floor")
    root = tracer.start_span("root")
    ctx = trace.set_span_in_context(root)
    best = float("inf")
    for _ in range(repeats):
        start = CLOCK()
        for i in range(n):
            tracer.start_span("s", context=ctx, attributes={"i": i}).end()
        best = min(best, (CLOCK() - start) / n)
    root.end()
    return best


def _sdk_same_spans(provider: Any, n: int = 5_000) -> float:
    """Seconds per span of the SDK alone making the spans tether makes for a step: a step
    span and an attempt span under it (each with its attribute), the attempt's context
    attached while the callable runs, the attempt count set on the step at its end."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    tracer = provider.get_tracer("floor")
    root = tracer.start_span("run")
    ctx = trace.set_span_in_context(root)
    start = CLOCK()
    for i in range(n):
        step = tracer.start_span("step s", context=ctx, attributes={"tether.step.id": "s"})
        parent = trace.set_span_in_context(step)
        attempt = tracer.start_span("attempt 0", context=parent, attributes={"n": i})
        token = otel_context.attach(trace.set_span_in_context(attempt))
        otel_context.detach(token)
        attempt.end()
        step.set_attribute("tether.step.attempts", 1)
        step.end()
    root.end()
    return (CLOCK() - start) / (2 * n)


def fill(url_path: Path, stored: int) -> str:
    """Write ``stored`` runs (a tenth failed, with steps and attempts on every 100th)."""
    import sqlite3

    import tether

    th = tether.Harness(f"sqlite:///{url_path}")

    @th.function(id="seed")
    def seed(ctx: tether.SyncContext) -> int:
        return 1

    th.run(seed)  # creates the schema and registers a function
    th.close()
    conn = sqlite3.connect(url_path)
    now = time.time() - stored
    functions = ["triage", "summarize", "reply", "classify", "seed"]
    with conn:
        rows = []
        steps = []
        attempts = []
        for i in range(stored):
            rid = f"run-{i:07d}"
            status = "failed" if i % 10 == 0 else "completed"
            created = now + i
            error = '{"type":"ValueError","message":"bad"}' if status == "failed" else None
            rows.append(
                (
                    rid,
                    functions[i % 5],
                    status,
                    "tether/function.invoked",
                    created,
                    f'{{"n":{i},"email":"user{i}@example.com"}}',
                    "1" if status == "completed" else None,
                    error,
                    created,
                    created + 0.01,
                    created + 0.5 + (i % 7) / 10,
                )
            )
            if i % 100 == 0:
                for s in range(10):
                    steps.append(
                        (rid, f"s{s}", s + 1, "run", "completed", "1", created, created + 0.01)
                    )
                    attempts.append(
                        (rid, f"s{s}", 0, created, created + 0.005, "ValueError", "x", "tb")
                    )
        conn.executemany(
            "INSERT INTO runs (id, function_id, status, event_name, event_ts, input, output, error, "
            "created_at, started_at, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO steps (run_id, step_id, seq, kind, status, output, started_at, ended_at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            steps,
        )
        conn.executemany(
            "INSERT INTO attempts (run_id, step_id, number, started_at, ended_at, error_type, "
            "error_message, traceback) VALUES (?,?,?,?,?,?,?,?)",
            attempts,
        )
    conn.close()
    return f"sqlite:///{url_path}"


def dashboard(stored: int, requests: int) -> dict[str, Any]:
    from starlette.testclient import TestClient

    import tether
    from tether.dashboard import create_app

    folder = Path(tempfile.mkdtemp(prefix="tether-bench-dash-"))
    started = time.perf_counter()
    url = fill(folder / "big.db", stored)
    fill_s = time.perf_counter() - started
    th = tether.Harness(url)
    client = TestClient(create_app(th))
    middle = f"run-{stored // 2:07d}"
    cases = {
        "api runs, first page": "/api/runs?limit=50",
        "api runs, function+status": "/api/runs?function_id=reply&status=failed&limit=50",
        "api runs, deep page": f"/api/runs?limit=50&before={middle}",
        "api runs, text search": "/api/runs?q=user4999&limit=50",
        "api runs, text, no match": "/api/runs?q=nobody-at-all&limit=50",
        "runs page (HTML)": "/runs?function_id=triage",
        "run page (HTML)": f"/runs/run-{(stored // 200) * 100:07d}",
        "api run": f"/api/runs/run-{(stored // 200) * 100:07d}",
        "functions page (HTML)": "/functions",
    }
    out: dict[str, Any] = {"stored_runs": stored, "fill_s": fill_s}
    for label, path in cases.items():
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
        times.sort()
        out[label] = {
            "p50_ms": statistics.median(times) * 1e3,
            "p95_ms": times[int(len(times) * 0.95) - 1] * 1e3,
        }
    th.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per round (trivial steps)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = {"tracing": tracing(args.runs, args.rounds)}
    t = result["tracing"]
    print(
        f"10 x 1 ms steps: off {t['work_run_off_ms']:.2f} ms, on {t['work_run_on_ms']:.2f} ms "
        f"per run: +{t['work_added_pct']:.1f}% (target < 20%)"
    )
    print(
        f"10 trivial steps: off {t['trivial_run_off_ms']:.3f} ms, on {t['trivial_run_on_ms']:.3f} "
        f"ms per run: {t['per_span_us']:.1f} µs per span (target < 15 µs; the OpenTelemetry SDK "
        f"alone: {t['sdk_span_floor_us']:.1f} µs per span, so tether's own share: "
        f"{t['per_span_us'] - t['sdk_span_floor_us']:.1f} µs; {t['per_span_vs_sdk']:.2f}x the SDK, "
        "target <= 1.3x)"
    )
    print(
        f"the SDK alone making a step's two spans as tether does (attributes, parent, context "
        f"attached): {t['sdk_same_spans_us']:.1f} µs per span; tether = "
        f"{t['per_span_vs_sdk_same_spans']:.2f}x that"
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    result["dashboard"] = dashboard(args.stored, args.requests)
    d = result["dashboard"]
    print(f"dashboard over {d['stored_runs']:,} stored runs (filled in {d['fill_s']:.1f} s):")
    for label, v in d.items():
        if isinstance(v, dict):
            print(f"  {label:28s} p50 {v['p50_ms']:7.2f} ms   p95 {v['p95_ms']:7.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

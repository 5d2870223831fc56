"""Throughput on PostgreSQL with 1, 2 and 4 worker processes, against the raw commit.

    python bench/scale.py [--url postgresql://postgres@127.0.0.1/test] [--runs 400]
                          [--concurrency 50] [--workers 1,2,4] [--io-ms 20]
    python bench/scale.py --workers 1 --concurrency 8 --io-ms 0   # issue 10's figure

The second form is the figure issue 10 sets targets for: one worker with 8 runs of 10
trivial steps in flight, against the same machine's sequential rate and against DBOS
(the same queue concurrency) in the same run.

In one run, on one server:
- raw: committed single-row INSERTs from Python on one connection, one after the other
  (``synchronous_commit`` on, then off): the physical limit of a checkpoint.
- seq: one process, ``Harness.run`` of a 10-step function with trivial steps, one run
  after the other: the sequential per-step overhead of tether.
- workers: W ``Harness.worker`` processes (``--concurrency`` runs in flight each) execute
  ``--runs`` runs of 10 steps, each step awaiting ``--io-ms`` of simulated I/O (an LLM
  call); the clock starts when the runs are sent (one accepted batch) and stops when the
  last completes. Prints runs/s, steps/s, and steps/s over the raw single-connection rate.
- dbos: the same workloads on DBOS (a ``@DBOS.workflow`` calling a ``@DBOS.step`` ten
  times) with its PostgreSQL system database on the same server, when ``dbos`` is
  installed (``pip install dbos``); W processes each enqueue their share on one DBOS queue
  (``worker_concurrency`` = ``--concurrency``) and all of them dequeue from it.

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


def dbos_app(url: str, concurrency: int, io_ms: float) -> tuple[Any, Any, Any, Any]:
    """DBOS with the same two workflows, on its PostgreSQL system database ``url``."""
    from dbos import DBOS

    DBOS(config={"name": "scale", "system_database_url": url, "log_level": "WARNING"})

    @DBOS.step()
    async def io(i: int) -> int:
        if io_ms:
            await asyncio.sleep(io_ms / 1000)
        return i

    @DBOS.workflow()
    async def ten() -> int:
        return sum([await io(i) for i in range(STEPS)])

    @DBOS.step()
    def trivial_step(i: int) -> int:
        return i

    @DBOS.workflow()
    def trivial() -> int:
        return sum(trivial_step(i) for i in range(STEPS))

    DBOS.launch()
    queue = DBOS.register_queue("scale", worker_concurrency=concurrency)
    return DBOS, queue, ten, trivial


def dbos_main(argv: list[str]) -> None:
    """A DBOS child process: ``init``, ``seq RUNS`` or ``worker CONCURRENCY RUNS IO_MS``."""
    url, mode = argv[0], argv[1]
    if mode == "init":
        dbos, *_ = dbos_app(url, 1, 0)
    elif mode == "seq":
        dbos, _, _, trivial = dbos_app(url, 1, 0)
        runs = int(argv[2])
        for _ in range(10):
            trivial()
        started = time.perf_counter()
        for _ in range(runs):
            trivial()
        print((time.perf_counter() - started) / (runs * STEPS) * 1e6, flush=True)
    else:
        dbos, queue, ten, _ = dbos_app(url, int(argv[2]), float(argv[4]))
        print("ready", flush=True)
        sys.stdin.readline()  # go

        async def work() -> None:
            handles = [await queue.enqueue_async(ten) for _ in range(int(argv[3]))]
            for handle in handles:
                await handle.get_result()

        asyncio.run(work())
        print("done", flush=True)
        sys.stdin.readline()  # every process stays up (and dequeues) until all are done
    dbos.destroy()


def dbos_rows(
    base: str, workers: list[int], runs: int, seq_runs: int, c: int, io_ms: float
) -> dict[str, float]:
    """The DBOS figures, each phase in child processes on a database of its own."""
    try:
        import dbos  # noqa: F401
    except ImportError:
        print("dbos: not installed in this environment (pip install dbos): no DBOS figures")
        return {}
    root = base.rsplit("/", 1)[0]

    def child(url: str, *args: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, __file__, "--dbos", url, *args]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def fresh() -> str:
        url = f"{root}/dbos_scale_{uuid.uuid4().hex[:8]}"
        assert child(url, "init").wait(120) == 0
        return url

    def dropdb(url: str) -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    url = fresh()
    try:
        proc = child(url, "seq", str(seq_runs))
        out, _ = proc.communicate(timeout=600)
        dbos_seq = float(out.strip().splitlines()[-1])
    finally:
        dropdb(url)
    print(f"dbos sequential, trivial steps: {dbos_seq:7.0f} us/step")
    figures = {"seq": dbos_seq}
    for w in workers:
        url = fresh()
        procs = [child(url, "worker", str(c), str(runs // w), str(io_ms)) for _ in range(w)]
        try:
            for p in procs:
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            started = time.perf_counter()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                assert p.stdout is not None and p.stdout.readline().strip() == "done"
            seconds = time.perf_counter() - started
            for p in procs:
                p.communicate("stop\n", timeout=60)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            dropdb(url)
        total = runs // w * w
        print(
            f"  dbos {w} worker(s): {total / seconds:7.1f} runs/s "
            f"{total * STEPS / seconds:8.0f} steps/s"
        )
        figures[str(w)] = total * STEPS / seconds
    return figures


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--dbos":
        dbos_main(sys.argv[2:])
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
    print(f"cores: {os.cpu_count()}, load average at the start: {os.getloadavg()[0]:.2f}")
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
    ours = {"seq": seq}
    for w in counts:
        seconds = with_workers(args.url, w, args.runs, args.concurrency, args.io_ms)
        steps_s = args.runs * STEPS / seconds
        ours[str(w)] = steps_s
        print(
            f"  {w} worker(s): {args.runs / seconds:7.1f} runs/s {steps_s:8.0f} steps/s "
            f"= {steps_s * raw_on / 1e6:.2f}x the raw single-connection commit rate, "
            f"{steps_s * seq / 1e6:.2f}x tether's sequential rate"
        )
    theirs = dbos_rows(args.url, counts, args.runs, args.seq_runs, args.concurrency, args.io_ms)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if theirs:
        print(f"sequential per-step overhead: DBOS / tether = {theirs['seq'] / seq:.1f}x")
        for w in counts:
            ratio = ours[str(w)] / theirs[str(w)]
            print(f"{w} worker(s), equal concurrency: tether / DBOS steps/s = {ratio:.1f}x")


if __name__ == "__main__":
    main()

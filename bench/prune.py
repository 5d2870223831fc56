"""Pruning 1,000,000 attempts while a worker keeps going: its throughput during the prune
against without it, the longest write batch, and what ``--vacuum`` gives back.

    PYTHONPATH=src python bench/prune.py                      # 1,000,000 attempts, SQLite
    PYTHONPATH=src python bench/prune.py --attempts 100000    # a smaller store
    PYTHONPATH=src python bench/prune.py --url postgresql://postgres@127.0.0.1:5432/test

1. The store gets ``--attempts`` old attempts with bulk SQL inserts
   (``tether.testing.history.fill_history``: finished runs 60 days old, 2 steps each, 2
   attempts per step, about 200-byte payloads), not by executing runs.
2. A worker process (``Harness.worker(concurrency=8)``) executes a backlog of runs of a
   3-step function (trivial steps), accepted in one ``send`` before timing starts.
3. Throughput = runs of that function completed per second, counted in the store by their
   ``ended_at``: over ``--window`` seconds before the prune, during the whole prune
   (``Harness.prune(older_than="30d")`` in this process, the default batching), and over
   ``--window`` seconds after it. Ratio = during / mean(before, after); target >= 0.8.
4. Then ``Harness.vacuum()``: the file's size before and after, and how long it took; and
   how long one full ``VACUUM`` of what remains takes (what the first ``--vacuum`` of a
   store created before incremental vacuum costs, per MB left).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import tether
from tether.store.sql import SQLStore
from tether.testing.history import fill_history

DAY = 86400.0
WORKER = """
import sys, tether
th = tether.Harness(sys.argv[1])

@th.function(id="work", trigger=tether.on_event("work"))
def work(ctx):
    return sum(ctx.step.run(f"s{i}", lambda i=i: i) for i in range(3))

th.worker(concurrency=8).run()
"""


def completed(store: SQLStore, start: float, end: float) -> int:
    rows = store.read(
        "SELECT count(*) FROM runs WHERE function_id='work' AND ended_at >= ? AND ended_at < ?",
        (start, end),
    )
    return int(rows[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--url", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--backlog", type=int, default=60_000)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tether-prune-"))
    schema = None
    if args.url:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        url = f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}"
    else:
        url = f"sqlite:///{folder / 'prune.db'}"
    th = tether.Harness(url)
    store = th.store
    assert isinstance(store, SQLStore)
    figures: dict[str, Any] = {"store": "postgres" if args.url else "sqlite"}

    runs = args.attempts // 4
    t = time.perf_counter()
    fill_history(store, runs, ended_at=time.time() - 60 * DAY)
    figures["build_s"] = round(time.perf_counter() - t, 1)
    figures["old_runs"], figures["old_attempts"] = runs, runs * 4
    print(f"built {runs:,} runs / {runs * 4:,} attempts in {figures['build_s']} s", flush=True)

    th.function(id="work", trigger=tether.on_event("work"))(lambda ctx: None)
    for start in range(0, args.backlog, 1000):  # the most one send takes
        n = min(1000, args.backlog - start)
        th.send([tether.Event("work", {"n": i}) for i in range(n)])
    (folder / "worker.py").write_text(textwrap.dedent(WORKER))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    worker = subprocess.Popen(
        [sys.executable, str(folder / "worker.py"), url], env=env, stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(3.0)  # warm-up
        a = time.time()
        time.sleep(args.window)
        b = time.time()
        before = completed(store, a, b) / (b - a)

        c = time.time()
        result = th.prune(older_than="30d")
        d = time.time()
        during = completed(store, c, d) / (d - c)

        time.sleep(args.window)
        e = time.time()
        after = completed(store, d, e) / (e - d)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    left = completed(store, 0, time.time() + 1)
    figures.update(
        prune_s=round(d - c, 1),
        pruned=dict(result),
        pruned_mb=round(result.bytes["runs"] / 1e6, 1),
        attempts_per_s=round(figures["old_attempts"] / (d - c)),
        batches=result.batches,
        longest_batch_ms=round(result.longest_batch_s * 1000, 1),
        p50_batch_ms=round(result.batch_quantile(0.5) * 1000, 1),
        p99_batch_ms=round(result.batch_quantile(0.99) * 1000, 1),
        slowest_batches_wall_cpu_ms=[
            (round(w * 1000, 1), round(c * 1000, 1))
            for w, c in sorted(zip(result.batch_times, result.batch_cpu, strict=True))[-5:]
        ],
        runs_per_s_before=round(before, 1),
        runs_per_s_during=round(during, 1),
        runs_per_s_after=round(after, 1),
        ratio=round(during / ((before + after) / 2), 2),
        work_runs_completed=left,
    )
    if not args.url:
        path = folder / "prune.db"
        t = time.perf_counter()
        shrunk = th.vacuum()
        figures["vacuum_s"] = round(time.perf_counter() - t, 1)
        figures["file_mb_before_vacuum"] = round(shrunk["bytes_before"] / 1e6, 1)
        figures["file_mb_after_vacuum"] = round(os.path.getsize(path) / 1e6, 1)
    th.close()
    if not args.url:  # what the one full VACUUM of an older store costs, on what remains
        conn = sqlite3.connect(path, isolation_level=None)
        t = time.perf_counter()
        conn.execute("VACUUM")
        figures["full_vacuum_s"] = round(time.perf_counter() - t, 1)
        conn.close()
    if schema is not None:
        import psycopg

        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

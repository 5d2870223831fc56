"""Claim cost through the flow-control checks versus a plain claim, in one run.

10,000 queued runs; with flow control they spread over 1,000 distinct concurrency keys
(limit 1 each). A worker-sized claim (10 runs) is timed repeatedly; each claimed batch is
finished at once so the running set stays the size of one worker. Prints both medians
and the ratio (target: keyed claim within 2x of the plain claim).

    python bench/flow.py [--runs 10000] [--keys 1000] [--batch 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import tether
from tether.store.base import Store


def build(path: Path, runs: int, keys: int, keyed: bool) -> tether.Harness:
    th = tether.Harness(f"sqlite:///{path}")
    concurrency = tether.Concurrency(limit=1, key="event.data.k") if keyed else None

    @th.function(id="job", trigger=tether.on_event("job"), concurrency=concurrency)
    def job(ctx: tether.SyncContext) -> None:
        return None

    for start in range(0, runs, 1000):
        th.send([tether.Event("job", {"k": i % keys}) for i in range(start, start + 1000)])
    return th


def measure(store: Store, batch: int, keyed: bool, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        now = time.time()
        started = time.perf_counter()
        claims = store.claim("bench", batch, ["job"], now, 30.0, keyed)
        times.append(time.perf_counter() - started)
        for c in claims:
            store.finish(c.run_id, c.token, "completed", "null", None, now)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plain = build(Path(folder) / "plain.db", args.runs, args.keys, keyed=False)
        keyed = build(Path(folder) / "keyed.db", args.runs, args.keys, keyed=True)
        # interleave to share the machine's noise
        p_times: list[float] = []
        k_times: list[float] = []
        for _ in range(3):
            p_times += measure(plain.store, args.batch, False, args.rounds // 3)
            k_times += measure(keyed.store, args.batch, True, args.rounds // 3)
        p = statistics.median(p_times) * 1e6
        k = statistics.median(k_times) * 1e6
        print(f"queued runs: {args.runs:,}; keys: {args.keys:,}; claim batch: {args.batch}")
        print(f"plain claim   median {p:8.1f} us  ({p / args.batch:6.1f} us per run)")
        print(f"keyed claim   median {k:8.1f} us  ({k / args.batch:6.1f} us per run)")
        print(f"ratio keyed / plain: {k / p:.2f}x (target <= 2x)")
        plain.close()
        keyed.close()


if __name__ == "__main__":
    main()

"""Build latency of a store-backed context window (``th.context``) on SQLite.

A conversation of ``bench/context_data.py`` (about 760 turns, tool calls and large results
included) is added turn by turn to ``th.context(key, budget=...)`` on a SQLite file; from
turn ``--from`` on, every user turn is followed by a ``build()`` (what ``ctx.step.llm``
does before each call), timed. A build reads only the items that are new since the last
one (the window keeps what it read), then fits the window into the budget. Reported: the
build's wall-time p50/p95/max and its CPU p50/p95, and the cost of an ``add`` (one
transaction), at each budget. Also a cold build: a new window object (another process)
reading the whole log once.

    PYTHONPATH=src python bench/context_store.py [--budgets 2000,4000] [--from 600]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from context_data import dataset

import tether
from context import to_message


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="store-backed context window build latency")
    parser.add_argument("--budgets", default="2000,4000")
    parser.add_argument("--from", dest="start", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    conv = dataset(seed=args.seed, conversations=1)["conversations"][0]
    turns = conv["turns"]
    print(f"conversation: {len(turns)} turns; builds from turn {args.start}")
    print(
        "| budget | builds | build p50 / p95 / max ms (wall) | CPU p50 / p95 ms | add p50 ms | cold build ms |"
    )
    print("|---|---|---|---|---|---|")
    for budget in (int(b) for b in args.budgets.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            th = tether.Harness(f"sqlite:///{folder}/bench.db")
            w = th.context("bench", budget=budget, system="Answer from the conversation.")
            w.pin("profile", "Ada Lovelace, account ACC-7781")
            walls: list[float] = []
            cpus: list[float] = []
            adds: list[float] = []
            for n, turn in enumerate(turns):
                t0 = time.perf_counter()
                w.add(to_message(turn))
                adds.append(time.perf_counter() - t0)
                if n >= args.start and turn["role"] == "user":
                    c0, t0 = time.process_time(), time.perf_counter()
                    built = w.build()
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                    assert built.report.tokens <= budget
            t0 = time.perf_counter()
            th.context("bench", budget=budget).build()
            cold = time.perf_counter() - t0
            th.close()
        ms = [v * 1000 for v in walls]
        cms = [v * 1000 for v in cpus]
        print(
            f"| {budget} | {len(ms)} | {pct(ms, 0.5):.1f} / {pct(ms, 0.95):.1f} / {max(ms):.1f} "
            f"| {pct(cms, 0.5):.1f} / {pct(cms, 0.95):.1f} "
            f"| {statistics.median(adds) * 1000:.2f} | {cold * 1000:.0f} |"
        )


if __name__ == "__main__":
    main()

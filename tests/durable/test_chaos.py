"""Chaos: four worker processes on one store, a SIGKILL to a random worker about every
second or faster (each killed worker replaced), 500 runs of ten steps.

Every run completes; no step is executed again once its checkpoint committed (an
execution that began after the step's recorded end would be one); every idempotency key
reaches the ledger exactly once; and no two workers ever executed steps of one run at
the same time (fencing: a worker that lost its lease commits nothing, and a takeover only
happens once the old lease expired). On PostgreSQL and on SQLite.
"""

from __future__ import annotations

import collections
import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.durable.apps import chaos_app
from tests.durable.apps.sandbox import Sandbox, wait_for

RUNS = 500
WORKERS = 4
APP = "tests.durable.apps.chaos_app:th"


@pytest.fixture
def sandbox(tmp_path: Path, store_url: str) -> Iterator[Sandbox]:
    with Sandbox(tmp_path, store_url) as box:
        yield box


def _executions(folder: Path) -> list[tuple[str, str, str, str, float]]:
    """(kind, run, step, pid, time) of every logged begin / end / dup line."""
    out = []
    for log in folder.glob("log-*.txt"):
        for line in log.read_text().splitlines():
            kind, run, step, pid, at = line.split()
            out.append((kind, run, step, pid, float(at)))
    return out


@pytest.mark.slow
def test_killing_random_workers_loses_and_repeats_nothing(sandbox: Sandbox) -> None:
    (sandbox.dir / "ledger").mkdir()
    th = chaos_app.build(sandbox.url)
    try:
        handles = [th.enqueue("chaos", {"folder": str(sandbox.dir)}) for _ in range(RUNS)]
        workers = [sandbox.worker(16, APP) for _ in range(WORKERS)]
        started = time.monotonic()
        kills = 0
        rng = random.Random(4)
        next_kill = started + 0.5

        def done() -> bool:
            nonlocal kills, next_kill
            if time.monotonic() >= next_kill and kills < 20:
                victim = rng.randrange(WORKERS)
                sandbox.kill(workers[victim])
                workers[victim] = sandbox.worker(16, APP)
                kills += 1
                next_kill = time.monotonic() + rng.uniform(0.3, 1.0)
            return sandbox.status_counts() == {"completed": RUNS}

        wait_for(done, 50, f"all {RUNS} runs to complete; {sandbox.status_counts()}", poll=0.1)
        elapsed = time.monotonic() - started
        assert all(h.result(timeout=5) == sum(range(chaos_app.STEPS)) for h in handles)

        ended = {
            (run, step): end
            for run, step, end in sandbox.query("SELECT run_id, step_id, ended_at FROM steps")
        }
        assert len(ended) == RUNS * chaos_app.STEPS
        log = _executions(sandbox.dir)
        begins = [(run, step, pid, at) for kind, run, step, pid, at in log if kind == "begin"]
        # No step began again after its checkpoint was written.
        after_commit = [b for b in begins if b[3] > ended[(b[0], b[1])]]
        assert after_commit == []
        # Every idempotency key reached the ledger once (dups were turned away there).
        ledger = sorted(p.name for p in (sandbox.dir / "ledger").iterdir())
        assert ledger == sorted(f"{run}:{step}" for run, step in ended)
        # No two processes ever executed steps of one run at the same time.
        spans: dict[str, list[tuple[float, float, str]]] = collections.defaultdict(list)
        opened = {(run, step, pid): at for run, step, pid, at in begins}
        for kind, run, step, pid, at in log:
            if kind == "end":
                spans[run].append((opened[(run, step, pid)], at, pid))
        overlaps = 0
        for run_spans in spans.values():
            run_spans.sort()
            for (_, end1, pid1), (start2, _, pid2) in itertools.pairwise(run_spans):
                overlaps += pid1 != pid2 and start2 < end1
        again = len(begins) - len(ended)
        dups = sum(1 for entry in log if entry[0] == "dup")
        print(
            f"\n{sandbox.url.split(':')[0]}: {RUNS} runs x {chaos_app.STEPS} steps with "
            f"{WORKERS} workers, {kills} SIGKILLs: {elapsed:.1f}s; {again} step executions "
            f"cut off and repeated, {dups} ledger duplicates turned away, "
            f"{overlaps} overlapping executions"
        )
        assert overlaps == 0
    finally:
        th.close()

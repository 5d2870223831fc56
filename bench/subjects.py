"""What end users' control costs on SQLite (DESIGN 4b), measured in one run.

1. ``secure_delete``: tether runs every SQLite connection with ``PRAGMA secure_delete=ON``
   (freed space zeroed, so a forgotten subject leaves no copy in the file). The workload of
   ``bench/steps.py`` (runs of 10 trivial steps, one after the other) with it ON and OFF, on
   fresh stores, rounds interleaved, best round kept.
2. ``forget()``: a store holding S subjects, each with R runs of a ``subject=`` function
   (3 steps each) and M memories (full-text only); the time to forget one subject — cancel,
   delete, merge the FTS index, checkpoint and truncate the WAL — and a raw byte scan of the
   file and WAL afterwards for that subject's text.

    python bench/subjects.py [--runs 300] [--subjects 200] [--per-subject 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import tether


def steps_round(folder: Path, runs: int, secure: bool) -> float:
    th = tether.Harness(f"sqlite:///{folder / 'steps.db'}", embedder=None)

    @th.function(id="ten")
    def ten(ctx: tether.SyncContext) -> int:
        for i in range(10):
            ctx.step.run(f"s{i}", lambda i=i: {"i": i, "pad": "x" * 100})
        return 1

    store: Any = th.store
    for conn in store._all:  # the connections the store opened: writer and readers
        conn.execute(f"PRAGMA secure_delete={'ON' if secure else 'OFF'}")
    started = time.perf_counter()
    for i in range(runs):
        th.run("ten", {"i": i})
    elapsed = time.perf_counter() - started
    th.close()
    return elapsed


def forget_round(folder: Path, subjects: int, per: int) -> dict[str, Any]:
    path = folder / "forget.db"
    th = tether.Harness(f"sqlite:///{path}", embedder=None)

    @th.function(id="chat", subject="event.data.user")
    def chat(ctx: tether.SyncContext) -> str:
        for i in range(3):
            ctx.step.run(f"s{i}", lambda: {"echo": ctx.event.data["text"]})
        return str(ctx.event.data["text"])

    started = time.perf_counter()
    for s in range(subjects):
        user = f"user:{s}"
        for r in range(per):
            th.run("chat", {"user": user, "text": f"secret{s:05d}x{r:03d} of {user}"})
            th.memory(user).add(f"memory{s:05d}x{r:03d} about {user}")
    filled = time.perf_counter() - started
    target = subjects // 2
    started = time.perf_counter()
    done = th.subject(f"user:{target}").forget()
    took = time.perf_counter() - started
    th.close()
    raw = b"".join(
        Path(str(path) + suffix).read_bytes()
        for suffix in ("", "-wal", "-shm")
        if Path(str(path) + suffix).exists()
    )
    marks = (f"secret{target:05d}".encode(), f"memory{target:05d}".encode())
    kept = f"secret{target + 1:05d}".encode()
    return {
        "fill_s": filled,
        "forget_ms": took * 1000,
        "counts": dict(done),
        "erased": done.erased,
        "residue_found": any(m in raw for m in marks),
        "others_readable": kept in raw,
        "file_mb": path.stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--per-subject", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for secure in (False, True):
            folder = Path(tempfile.mkdtemp(prefix="tether-bench-"))
            try:
                times[secure].append(steps_round(folder, args.runs, secure))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    steps = args.runs * 10
    for secure in (False, True):
        best = min(times[secure])
        print(
            f"secure_delete={'ON ' if secure else 'OFF'}: {steps / best:8.0f} steps/s best of "
            f"{args.rounds} (median {steps / statistics.median(times[secure]):.0f})"
        )
    ratio = min(times[True]) / min(times[False])
    print(f"secure_delete ON / OFF wall time: {ratio:.3f}")

    folder = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    try:
        result = forget_round(folder, args.subjects, args.per_subject)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"forget() of 1 subject among {args.subjects} ({args.per_subject} runs and memories "
        f"each, {result['file_mb']:.1f} MB file): {result['forget_ms']:.1f} ms; counts "
        f"{result['counts']}; erased={result['erased']}; its text in the raw file/WAL: "
        f"{result['residue_found']}; other subjects' text still readable: "
        f"{result['others_readable']}"
    )


if __name__ == "__main__":
    main()

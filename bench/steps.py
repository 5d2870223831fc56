"""Step overhead of tether against DBOS and a raw SQLite commit loop, measured in one run.

Workload: a function of 10 trivial steps, run N times (default 1,000) one after the other,
then N times with 8 runs in flight. Systems:

- ``raw-normal`` / ``raw-full``: stdlib sqlite3 in WAL mode, one INSERT + commit per step,
  ``synchronous=NORMAL`` / ``FULL``. The physical limit of this disk.
- ``dbos-default`` / ``dbos-tuned``: DBOS with its SQLite system database, as shipped and with
  ``journal_mode=WAL`` + ``synchronous=NORMAL`` set by a SQLAlchemy ``connect`` listener.
- ``tether-process`` / ``tether-power``: ``tether.Harness(durability="process" | "power")``,
  a plain ``def`` function (``SyncContext``) and an ``async def`` one (``Context``).
- ``tether-encrypted``: ``tether-process`` with encryption at rest on
  (``Harness(encryption_key=...)``, AES-256-GCM on every payload), its cost per step.
- With ``--drivers pysqlite3,sqlean,apsw``: ``raw-normal@DRIVER`` and ``tether-process@DRIVER``,
  the same workloads on another SQLite driver (one that bundles a newer SQLite), in the
  same round as the stdlib ones. ``pysqlite3`` (pysqlite3-binary) and ``sqlean``
  (sqlean.py) are drop-in DB-API modules, swapped in for ``sqlite3`` in the child; apsw
  has an API of its own, so only its raw commit loop runs (docs/storage.md has figures).

Every (system, phase) runs in its own child process on a fresh temporary directory, deleted
afterwards; systems are interleaved round by round and the best round is kept. Then the
kill-to-complete recovery time: two ``Harness.worker()`` subprocesses on one SQLite file, the
one executing a run is SIGKILLed mid-step, and the run must complete on the other.

    python bench/steps.py [--runs N] [--quick] [--json PATH] [--drivers pysqlite3,sqlean,apsw]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = 10
LANES = 8
HERE = Path(__file__).resolve()

SAMPLES: list[int] = []  # nanoseconds of each step call, appended inside the function


# --------------------------------------------------------------------------------------------
# Workloads (run in a child process). Each returns its wall time in seconds.


def _trivial(i: int) -> int:
    return i


async def _atrivial(i: int) -> int:
    return i


def _timed_lanes(total: int, lanes: int, one_run: Callable[[], Any]) -> float:
    """Run ``one_run`` ``total`` times over ``lanes`` threads, each lane sequential."""
    counts = [total // lanes + (1 if k < total % lanes else 0) for k in range(lanes)]
    errors: list[BaseException] = []
    start = threading.Barrier(lanes + 1)

    def lane(n: int) -> None:
        start.wait()
        try:
            for _ in range(n):
                one_run()
        except BaseException as exc:  # reported by the parent
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(n,)) for n in counts]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall


def _sequential(total: int, one_run: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    for _ in range(total):
        one_run()
    return time.perf_counter() - t0


def _timed(phase: str, total: int, one_run: Callable[[], Any]) -> float:
    """``seq``: one run after the other on this thread; ``conc``: 8 lanes of threads."""
    return _sequential(total, one_run) if phase == "seq" else _timed_lanes(total, LANES, one_run)


_RAW_TABLE = (
    "CREATE TABLE IF NOT EXISTS steps (run_id INTEGER, step_id TEXT, output TEXT,"
    " PRIMARY KEY (run_id, step_id))"
)
_RAW_INSERT = "INSERT INTO steps (run_id, step_id, output) VALUES (?, ?, ?)"


def _raw_loop(
    connect: Callable[[], Any],
    commit_step: Callable[[Any, int, int], None],
    phase: str,
    runs: int,
    warmup: int,
) -> float:
    """Time ``runs`` runs of STEPS commits, each ``commit_step(conn, run_id, i)`` on the
    lane's own connection (``connect()`` once per thread)."""
    local = threading.local()
    counter = iter(range(10**9))
    lock = threading.Lock()

    def one_run() -> None:
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = connect()
        with lock:
            run_id = next(counter)
        for i in range(STEPS):
            t0 = time.perf_counter_ns()
            commit_step(c, run_id, i)
            SAMPLES.append(time.perf_counter_ns() - t0)

    _sequential(warmup, one_run)
    SAMPLES.clear()
    return _timed(phase, runs, one_run)


def bench_raw(db: Path, phase: str, runs: int, warmup: int, sync: str) -> dict[str, Any]:
    """One INSERT + commit per step, WAL, the given ``synchronous`` level."""

    def connect() -> sqlite3.Connection:
        c = sqlite3.connect(db, timeout=30, check_same_thread=False)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"PRAGMA synchronous={sync}")
        return c

    def commit_step(c: sqlite3.Connection, run_id: int, i: int) -> None:
        c.execute(_RAW_INSERT, (run_id, f"s{i}", json.dumps(i)))
        c.commit()

    setup = connect()
    setup.execute(_RAW_TABLE)
    setup.commit()
    pragmas = {
        "journal_mode": setup.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": setup.execute("PRAGMA synchronous").fetchone()[0],
    }
    setup.close()
    return {"wall": _raw_loop(connect, commit_step, phase, runs, warmup), "pragmas": pragmas}


def bench_raw_apsw(db: Path, phase: str, runs: int, warmup: int) -> dict[str, Any]:
    """``bench_raw``'s NORMAL loop on apsw (its own API: no DB-API module to swap in)."""
    import apsw

    def connect() -> Any:
        c = apsw.Connection(str(db))
        c.set_busy_timeout(30_000)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        return c

    def commit_step(c: Any, run_id: int, i: int) -> None:
        c.execute("BEGIN")
        c.execute(_RAW_INSERT, (run_id, f"s{i}", json.dumps(i)))
        c.execute("COMMIT")

    connect().execute(_RAW_TABLE)
    wall = _raw_loop(connect, commit_step, phase, runs, warmup)
    return {"wall": wall, "sqlite": apsw.sqlite_lib_version()}


DRIVERS = ("pysqlite3", "sqlean", "apsw")


def use_driver(driver: str) -> str:
    """Make ``import sqlite3`` (tether's store, ``bench_raw``) load ``driver``; return
    the SQLite version it brings."""
    global sqlite3
    if driver in ("", "stdlib"):
        return sqlite3.sqlite_version
    if driver == "apsw":
        import apsw

        return str(apsw.sqlite_lib_version())
    import importlib

    module = importlib.import_module("pysqlite3.dbapi2" if driver == "pysqlite3" else driver)
    sys.modules["sqlite3"] = module
    sqlite3 = module  # bench_raw connects through it too
    return str(module.sqlite_version)


def bench_dbos(db: Path, phase: str, runs: int, warmup: int, tuned: bool) -> dict[str, Any]:
    import sqlalchemy as sa
    from dbos import DBOS, DBOSConfig

    seen: set[tuple[str, int]] = set()

    # DBOS builds its own engine (IMMEDIATE transactions, busy_timeout); a listener on the
    # Engine class runs on its connections too. Tuned sets the pragmas; both read them back.
    @sa.event.listens_for(sa.engine.Engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        if tuned:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        mode = dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0]
        level = dbapi_conn.execute("PRAGMA synchronous").fetchone()[0]
        seen.add((mode, level))

    config: DBOSConfig = {
        "name": "bench-steps",
        "system_database_url": f"sqlite:///{db}",
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    def trivial_step(i: int) -> int:
        return i

    @DBOS.workflow()
    def ten() -> int:
        total = 0
        for i in range(STEPS):
            t0 = time.perf_counter_ns()
            total += trivial_step(i)
            SAMPLES.append(time.perf_counter_ns() - t0)
        return total

    DBOS.launch()
    try:

        def one_run() -> None:
            assert ten() == 45

        _sequential(warmup, one_run)
        SAMPLES.clear()
        wall = _timed(phase, runs, one_run)
    finally:
        DBOS.destroy()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    pragmas = sorted(f"journal_mode={m} synchronous={names.get(s, s)}" for m, s in seen)
    return {"wall": wall, "pragmas": pragmas}


def _tether_functions(th: Any, tether: Any) -> tuple[Any, Any]:
    def ten_sync(ctx: tether.SyncContext) -> int:
        total = 0
        for i in range(STEPS):
            t0 = time.perf_counter_ns()
            total += ctx.step.run(f"s{i}", _trivial, i)
            SAMPLES.append(time.perf_counter_ns() - t0)
        return total

    async def ten_async(ctx: tether.Context) -> int:
        total = 0
        for i in range(STEPS):
            t0 = time.perf_counter_ns()
            total += await ctx.step.run(f"s{i}", _atrivial, i)  # async steps in async code
            SAMPLES.append(time.perf_counter_ns() - t0)
        return total

    return th.function(id="ten")(ten_sync), th.function(id="ten_async")(ten_async)


def bench_tether(
    db: Path,
    phase: str,
    runs: int,
    warmup: int,
    durability: str,
    variant: str,
    encrypted: bool = False,
) -> dict[str, Any]:
    import tether

    key = None
    if encrypted:
        from tether.store.encryption import generate_key

        key = generate_key()
    th = tether.Harness(store=f"sqlite:///{db}", durability=durability, encryption_key=key)
    ten_sync, ten_async = _tether_functions(th, tether)

    if variant == "async" and phase == "conc":
        # async functions executed by a worker with 8 slots on its event loop
        with th.worker(concurrency=LANES):
            h = th.enqueue(ten_async, {})
            assert h.result(timeout=600) == 45
            SAMPLES.clear()
            t0 = time.perf_counter()
            handles = [th.enqueue(ten_async, {}) for _ in range(runs)]
            for handle in handles:
                assert handle.result(timeout=600) == 45
            wall = time.perf_counter() - t0
        return {"wall": wall}

    if variant == "async":

        async def lanes(total: int, width: int) -> float:
            counts = [total // width + (1 if k < total % width else 0) for k in range(width)]

            async def lane(n: int) -> None:
                for _ in range(n):
                    assert await th.arun(ten_async, {}) == 45

            t0 = time.perf_counter()
            await asyncio.gather(*(lane(n) for n in counts))
            return time.perf_counter() - t0

        asyncio.run(lanes(warmup, 1))
        SAMPLES.clear()
        wall = asyncio.run(lanes(runs, 1 if phase == "seq" else LANES))
        return {"wall": wall}

    def one_run() -> None:
        assert th.run(ten_sync, {}) == 45

    _sequential(warmup, one_run)
    SAMPLES.clear()
    if phase == "seq":
        return {"wall": _sequential(runs, one_run)}
    if variant == "threads":  # 8 threads, each calling Harness.run in turn
        return {"wall": _timed_lanes(runs, LANES, one_run)}
    # variant "worker": enqueue every run, a worker with 8 slots executes them; the enqueues
    # are inside the timed window, as run creation is for every other system.
    with th.worker(concurrency=LANES):
        t0 = time.perf_counter()
        handles = [th.enqueue(ten_sync, {}) for _ in range(runs)]
        for handle in handles:
            assert handle.result(timeout=600) == 45
        wall = time.perf_counter() - t0
    return {"wall": wall}


def child_main(args: argparse.Namespace) -> None:
    db = Path(args.dir) / "bench.sqlite"
    system, _, driver = args.child.partition("@")
    phase, variant = args.phase, args.variant
    version = use_driver(driver)
    if driver == "apsw" and system == "raw-normal":
        result = bench_raw_apsw(db, phase, args.runs, args.warmup)
    elif driver == "apsw":
        raise SystemExit("apsw is not a DB-API module: only raw-normal@apsw runs")
    elif system in ("raw-normal", "raw-full"):
        sync = "NORMAL" if system == "raw-normal" else "FULL"
        result = bench_raw(db, phase, args.runs, args.warmup, sync)
    elif system in ("dbos-default", "dbos-tuned"):
        result = bench_dbos(db, phase, args.runs, args.warmup, system == "dbos-tuned")
    elif system in ("tether-process", "tether-power"):
        durability = system.removeprefix("tether-")
        result = bench_tether(db, phase, args.runs, args.warmup, durability, variant)
    elif system == "tether-encrypted":
        result = bench_tether(db, phase, args.runs, args.warmup, "process", variant, True)
    else:
        raise SystemExit(f"unknown system {system!r}")
    result["samples"] = SAMPLES
    result["sqlite"] = version
    wal = db.with_name(db.name + "-wal")  # WAL left behind: a WAL that never restarts grows
    result["wal_mb"] = wal.stat().st_size / 1e6 if wal.exists() else None
    Path(args.out).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------
# Recovery: two worker subprocesses on one SQLite file, SIGKILL the one executing the run.

SLOW_STEP = 5


def _recovery_harness(db: Path, markdir: Path) -> tuple[Any, Any]:
    import tether

    th = tether.Harness(store=f"sqlite:///{db}", durability="process", version="bench-recovery")

    def slow(i: int) -> int:
        """The first execution announces its pid and hangs; a re-execution returns at once."""
        mark = markdir / "started"
        if not mark.exists():
            tmp = markdir / "started.tmp"
            tmp.write_text(str(os.getpid()))
            tmp.rename(mark)
            time.sleep(300)
        return os.getpid()

    def recover(ctx: tether.SyncContext) -> dict[str, int]:
        total = 0
        pid = 0
        for i in range(STEPS):
            if i == SLOW_STEP:
                pid = ctx.step.run(f"s{i}", slow, i)
            else:
                total += ctx.step.run(f"s{i}", _trivial, i)
        return {"total": total, "finished_by": pid}

    return th, th.function(id="recover")(recover)


def worker_main(args: argparse.Namespace) -> None:
    markdir = Path(args.dir)
    th, _ = _recovery_harness(markdir / "bench.sqlite", markdir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = th.worker()
    worker.start()
    (markdir / f"ready-{os.getpid()}").touch()
    stop.wait()
    worker.stop(timeout=5)


def recovery_trial(python: str, timeout: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        th, recover = _recovery_harness(workdir / "bench.sqlite", workdir)
        for _ in range(2):
            cmd = [python, str(HERE), "--recovery-worker", "--dir", str(workdir)]
            procs.append(subprocess.Popen(cmd, stderr=subprocess.PIPE))
        deadline = time.monotonic() + timeout
        while len(list(workdir.glob("ready-*"))) < 2:
            _check_alive(procs, deadline, "workers to start")
            time.sleep(0.01)
        handle = th.enqueue(recover, {})
        while not (workdir / "started").exists():
            _check_alive(procs, deadline, "the slow step to start")
            time.sleep(0.001)
        victim = int((workdir / "started").read_text())
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        killed_wall = time.time()
        output = handle.result(timeout=timeout)
        completed = time.monotonic() - killed_at
        run = th.get_run(handle.run_id)
        ended = run.ended_at.timestamp() if run.ended_at is not None else None
        survivor = output["finished_by"]
        return {
            "seconds": completed,
            "seconds_to_ended_at": None if ended is None else ended - killed_wall,
            "killed_pid": victim,
            "finished_by": survivor,
            "ok": output["total"] == 45 - SLOW_STEP
            and survivor != victim
            and survivor in {p.pid for p in procs},
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _check_alive(procs: list[subprocess.Popen[bytes]], deadline: float, what: str) -> None:
    for p in procs:
        if p.poll() is not None:
            err = p.stderr.read().decode(errors="replace") if p.stderr else ""
            raise RuntimeError(f"worker exited ({p.returncode}) waiting for {what}:\n{err[-2000:]}")
    if time.monotonic() > deadline:
        raise TimeoutError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------
# Parent: run the children, keep the best round, print figures and ratios.


def run_child(
    system: str, phase: str, variant: str, runs: int, warmup: int, timeout: float
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{system}-"))
    out = workdir / "result.json"
    cmd = [sys.executable, str(HERE), "--child", system, "--phase", phase, "--variant", variant]
    cmd += ["--runs", str(runs), "--warmup", str(warmup), "--dir", str(workdir), "--out", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
            return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
        raw = json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # delete files between systems
    samples = raw.pop("samples")
    wall = raw["wall"]
    steps = runs * STEPS
    result = {
        "runs": runs,
        "wall_s": wall,
        "step_median_us": statistics.median(samples) / 1000 if samples else None,
        "step_p99_us": _percentile(samples, 0.99) / 1000 if samples else None,
        "wall_per_step_us": wall / steps * 1e6,
        "steps_per_s": steps / wall,
        "runs_per_s": runs / wall,
        "samples": len(samples),
        **{k: v for k, v in raw.items() if k != "wall"},
    }
    if len(samples) != steps:
        result["warning"] = f"{len(samples)} step samples, expected {steps}"
    return result


def _percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


Key = tuple[str, str, str]  # (system, phase, variant)


def _best(measurements: list[dict[str, Any]]) -> dict[str, Any]:
    """The best of several measurements: highest throughput, lowest median step."""
    good = [m for m in measurements if "error" not in m]
    if not good:
        return measurements[-1]
    best = dict(max(good, key=lambda m: m["steps_per_s"]))
    best["step_median_us"] = min(m["step_median_us"] for m in good)
    best["measurements"] = len(good)
    return best


def schedule(threads: bool, drivers: tuple[str, ...] = ()) -> list[Key]:
    """One round. Each tether mode runs between two measurements of its raw reference, and
    its ratios divide figures of the same round: the disk's fsync time drifts over minutes.
    Other SQLite drivers run right after the stdlib's process-mode block, interleaved."""
    seq = ["sync", "async"]
    conc = ["worker", "async", *(["threads"] if threads else [])]
    cases: list[Key] = []
    for raw, tether in (("raw-normal", "tether-process"), ("raw-full", "tether-power")):
        bracket: list[Key] = [(raw, "seq", "-"), (raw, "conc", "-")]
        cases += bracket
        cases += [(tether, "seq", v) for v in seq] + [(tether, "conc", v) for v in conc]
        if raw == "raw-normal":
            cases += [("tether-encrypted", "seq", "sync"), ("tether-encrypted", "conc", "worker")]
            for driver in drivers:
                cases += [
                    (f"raw-normal@{driver}", "seq", "-"),
                    (f"raw-normal@{driver}", "conc", "-"),
                ]
                if driver != "apsw":
                    cases += [(f"tether-process@{driver}", "seq", "sync")]
                    cases += [(f"tether-process@{driver}", "conc", "worker")]
        cases += bracket
    cases += [(d, p, "-") for d in ("dbos-default", "dbos-tuned") for p in ("seq", "conc")]
    return cases


def label(system: str, variant: str) -> str:
    return system if variant == "-" else f"{system} ({variant})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per phase (default 1000)")
    parser.add_argument("--quick", action="store_true", help="200 runs, one round, one recovery")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 2)")
    parser.add_argument("--recovery-trials", type=int, default=None)
    parser.add_argument("--only", default="", help="comma-separated systems to run (default: all)")
    parser.add_argument("--no-threads", action="store_true", help="skip tether 8-thread run()")
    parser.add_argument("--timeout", type=float, default=900.0, help="per child, seconds")
    parser.add_argument(
        "--drivers", default="", help=f"other SQLite drivers to compare: {','.join(DRIVERS)}"
    )
    # internal
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--recovery-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", default="seq", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="-", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    if args.recovery_worker:
        worker_main(args)
        return

    runs = args.runs or (200 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 2)
    trials = args.recovery_trials or (1 if args.quick else 3)
    warmup = max(5, min(50, runs // 10))
    only = {s for s in args.only.split(",") if s}
    drivers = [d for d in args.drivers.split(",") if d]
    unknown = sorted(set(drivers) - set(DRIVERS))
    if unknown:
        raise SystemExit(f"--drivers: unknown {unknown}; choose from {list(DRIVERS)}")
    cases = [
        c
        for c in schedule(not args.no_threads, tuple(drivers))
        if not only or c[0].split("@")[0] in only
    ]
    print(_environment_line(runs, rounds))

    measured: list[dict[Key, list[dict[str, Any]]]] = []
    for r in range(rounds):
        this: dict[Key, list[dict[str, Any]]] = {}
        for key in cases:
            system, phase, variant = key
            load = os.getloadavg()[0]  # the machine is shared: each figure with its load
            res = run_child(system, phase, variant, runs, warmup, args.timeout)
            res["load"] = load
            this.setdefault(key, []).append(res)
            state = res.get("error") or (
                f"{res['steps_per_s']:9,.0f} steps/s  step median {res['step_median_us']:8.1f} us"
                f"  load {load:.2f}"
            )
            print(f"  round {r + 1}: {label(system, variant):28} {phase:4} {state}", flush=True)
        measured.append(this)
    per_round = [{k: _best(v) for k, v in this.items()} for this in measured]
    overall = {k: _best([m for this in measured for m in this.get(k, [])]) for k in cases}

    recovery: list[dict[str, Any]] = []
    if not only or "tether-process" in only:
        for _ in range(trials):
            try:
                recovery.append(recovery_trial(sys.executable, timeout=60.0))
            except Exception as exc:
                recovery.append({"error": f"{type(exc).__name__}: {exc}"})

    report = build_report(per_round, recovery)
    print_report(overall, recovery, report)
    driver_rows = driver_report(per_round, drivers)
    print_drivers(driver_rows)
    if args.json:
        payload = {
            "environment": _environment(runs, rounds),
            "best": [
                {"system": s, "phase": p, "variant": v, **overall[(s, p, v)]}
                for (s, p, v) in overall
            ],
            "rounds": [
                [{"system": s, "phase": p, "variant": v, "measurements": ms} for (s, p, v), ms in r]
                for r in (list(this.items()) for this in measured)
            ],
            "recovery": recovery,
            "ratios": report,
            "drivers": driver_rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        print(f"\nwrote {args.json}")


def _get(best: dict[Key, dict[str, Any]], s: str, p: str, v: str = "-") -> Any:
    r = best.get((s, p, v))
    return None if r is None or "error" in r else r


def round_ratios(best: dict[Key, dict[str, Any]]) -> list[dict[str, Any]]:
    """The ratios of one round. ``higher`` tells which way is better."""
    rows: list[dict[str, Any]] = []

    def add(
        name: str, value: float, target: str, limit: float | None, higher: bool, note: str
    ) -> None:
        ok = None if limit is None else (value >= limit if higher else value <= limit)
        row = {"ratio": name, "value": value, "target": target, "ok": ok, "higher": higher}
        rows.append(row | {"note": note})

    raw_n_seq = _get(best, "raw-normal", "seq")
    raw_n_rate = max(
        (r["steps_per_s"] for p in ("seq", "conc") if (r := _get(best, "raw-normal", p))),
        default=None,
    )
    raw_f_rate = max(
        (r["steps_per_s"] for p in ("seq", "conc") if (r := _get(best, "raw-full", p))),
        default=None,
    )
    for variant in ("sync", "async"):
        tp = _get(best, "tether-process", "seq", variant)
        if not tp:
            continue
        if raw_n_seq:
            med, raw_med = tp["step_median_us"], raw_n_seq["step_median_us"]
            wall, raw_wall = tp["wall_per_step_us"], raw_n_seq["wall_per_step_us"]
            add(  # issue 10's definition: run creation and finish included
                f"tether-process ({variant}) seq wall/step / raw NORMAL commit median",
                wall / raw_med,
                "<= 1.5x",
                1.5,
                False,
                f"{wall:.1f} us / {raw_med:.1f} us",
            )
            add(
                f"tether-process ({variant}) seq per-step median / raw NORMAL commit",
                med / raw_med,
                "- (step call only)",
                None,
                False,
                f"{med:.1f} us / {raw_med:.1f} us",
            )
            add(
                f"tether-process ({variant}) seq wall/step / raw NORMAL wall/step",
                wall / raw_wall,
                "- (runs' start+end in)",
                None,
                False,
                f"{wall:.1f} us / {raw_wall:.1f} us",
            )
        for dbos in ("dbos-default", "dbos-tuned"):
            d = _get(best, dbos, "seq")
            if d:
                default = dbos == "dbos-default"
                add(
                    f"{dbos} / tether-process ({variant}) seq per-step",
                    d["step_median_us"] / tp["step_median_us"],
                    ">= 30x" if default else "-",
                    30.0 if default else None,
                    True,
                    f"{d['step_median_us']:.0f} us / {tp['step_median_us']:.1f} us",
                )
    for variant in ("worker", "async", "threads"):
        tc = _get(best, "tether-process", "conc", variant)
        if tc and raw_n_rate:
            add(
                f"tether-process ({variant}) 8-conc steps/s / raw NORMAL commit rate",
                tc["steps_per_s"] / raw_n_rate,
                ">= 0.5 (stretch 1.0)",
                0.5,
                True,
                f"{tc['steps_per_s']:,.0f} / {raw_n_rate:,.0f} steps/s",
            )
        for dbos in ("dbos-default", "dbos-tuned"):
            d = _get(best, dbos, "conc")
            if tc and d:
                add(
                    f"tether-process ({variant}) / {dbos} 8-conc steps/s",
                    tc["steps_per_s"] / d["steps_per_s"],
                    "-",
                    None,
                    True,
                    f"{tc['steps_per_s']:,.0f} / {d['steps_per_s']:,.0f} steps/s",
                )
    te, tp = (
        _get(best, "tether-encrypted", "seq", "sync"),
        _get(best, "tether-process", "seq", "sync"),
    )
    if te and tp:
        add(
            "tether-encrypted (sync) seq per-step / tether-process (sync)",
            te["step_median_us"] / tp["step_median_us"],
            "-",
            None,
            False,
            f"{te['step_median_us']:.1f} us / {tp['step_median_us']:.1f} us",
        )
    te, tc = (
        _get(best, "tether-encrypted", "conc", "worker"),
        _get(best, "tether-process", "conc", "worker"),
    )
    if te and tc:
        add(
            "tether-encrypted (worker) 8-conc steps/s / tether-process (worker)",
            te["steps_per_s"] / tc["steps_per_s"],
            "-",
            None,
            True,
            f"{te['steps_per_s']:,.0f} / {tc['steps_per_s']:,.0f} steps/s",
        )
    for variant in ("worker", "async", "threads"):
        tw = _get(best, "tether-power", "conc", variant)
        if tw and raw_f_rate:
            add(
                f"tether-power ({variant}) 8-conc steps/s / raw FULL commit rate",
                tw["steps_per_s"] / raw_f_rate,
                ">= 4x (issue 2)",
                4.0,
                True,
                f"{tw['steps_per_s']:,.0f} / {raw_f_rate:,.0f} steps/s",
            )
        tc = _get(best, "tether-process", "conc", variant)
        if tw and tc:
            add(
                f"tether-power ({variant}) / tether-process 8-conc steps/s",
                tw["steps_per_s"] / tc["steps_per_s"],
                ">= 0.8x",
                0.8,
                True,
                f"{tw['steps_per_s']:,.0f} / {tc['steps_per_s']:,.0f} steps/s",
            )
    return rows


def driver_report(
    per_round: list[dict[Key, dict[str, Any]]], drivers: list[str]
) -> list[dict[str, Any]]:
    """Per driver and round: its figures and their ratio to the stdlib's in that round."""
    rows: list[dict[str, Any]] = []
    if not drivers:
        return rows
    for n, best in enumerate(per_round, 1):
        for driver in ["stdlib", *drivers]:
            suffix = "" if driver == "stdlib" else f"@{driver}"
            row: dict[str, Any] = {"round": n, "driver": driver}
            for name, (system, phase, variant) in {
                "raw_seq": ("raw-normal", "seq", "-"),
                "raw_conc": ("raw-normal", "conc", "-"),
                "tether_seq": ("tether-process", "seq", "sync"),
                "tether_conc": ("tether-process", "conc", "worker"),
            }.items():
                got = _get(best, system + suffix, phase, variant)
                if got is not None:
                    row[f"{name}_median_us"] = got["step_median_us"]
                    row[f"{name}_steps_s"] = got["steps_per_s"]
                    row["sqlite"] = got.get("sqlite")
            rows.append(row)
    for row in rows:
        base = next(r for r in rows if r["round"] == row["round"] and r["driver"] == "stdlib")
        for key in [k for k in row if k.endswith("_median_us")]:
            if base.get(key):
                row[key.replace("_median_us", "_vs_stdlib")] = row[key] / base[key]
    return rows


def print_drivers(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print("\nSQLite drivers (per-step median in us; x: over the stdlib's in the same round):")
    print(
        f"  {'round':5} {'driver':10} {'sqlite':8} {'raw seq':>14} {'raw conc':>14} "
        f"{'tether seq':>15} {'tether conc':>15} {'tether conc/s':>13}"
    )

    def cell(row: dict[str, Any], name: str) -> str:
        med, ratio = row.get(f"{name}_median_us"), row.get(f"{name}_vs_stdlib")
        return "-" if med is None else f"{med:6.1f} ({ratio:.2f}x)"

    for row in rows:
        rate = row.get("tether_conc_steps_s")
        print(
            f"  {row['round']:<5} {row['driver']:10} {row.get('sqlite') or '-':8} "
            f"{cell(row, 'raw_seq'):>14} {cell(row, 'raw_conc'):>14} "
            f"{cell(row, 'tether_seq'):>15} {cell(row, 'tether_conc'):>15} "
            f"{'-' if rate is None else f'{rate:,.0f}':>13}"
        )


def build_report(
    per_round: list[dict[Key, dict[str, Any]]], recovery: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each ratio from the round where it came out best, with every round's value."""
    report: list[dict[str, Any]] = []
    by_name: dict[str, list[dict[str, Any]]] = {}
    for best in per_round:
        for row in round_ratios(best):
            by_name.setdefault(row["ratio"], []).append(row)
    for rows in by_name.values():
        pick = max if rows[0]["higher"] else min
        chosen = dict(pick(rows, key=lambda row: row["value"]))
        chosen["rounds"] = [row["value"] for row in rows]
        report.append(chosen)
    good = [t for t in recovery if "error" not in t]
    if good:
        worst = max(t["seconds"] for t in good)
        report.append(
            {
                "ratio": "kill-to-complete recovery, worst trial (s)",
                "value": worst,
                "target": "< 3 s",
                "ok": worst < 3 and all(t["ok"] for t in good) and len(good) == len(recovery),
                "rounds": [t["seconds"] for t in good],
                "note": f"{len(good)}/{len(recovery)} trials completed on the survivor",
            }
        )
    return report


def print_report(
    best: dict[Key, dict[str, Any]],
    recovery: list[dict[str, Any]],
    report: list[dict[str, Any]],
) -> None:
    print("\nbest of all rounds:")
    head = (
        f"{'system':30} {'phase':5} {'step med us':>11} {'p99 us':>8} {'wall/step us':>12}"
        f" {'steps/s':>9} {'runs/s':>8} {'WAL MB':>7}"
    )
    print(head)
    print("-" * len(head))
    for (system, phase, variant), r in best.items():
        name = label(system, variant)
        if "error" in r:
            print(f"{name:30} {phase:5} ERROR {r['error'][:300]}")
            continue
        print(
            f"{name:30} {phase:5} {r['step_median_us']:11.1f} {r['step_p99_us']:8.0f}"
            f" {r['wall_per_step_us']:12.1f} {r['steps_per_s']:9,.0f} {r['runs_per_s']:8,.1f}"
            + (f" {r['wal_mb']:7.1f}" if r.get("wal_mb") is not None else f" {'-':>7}")
        )
        if "warning" in r:
            print(f"{'':36} warning: {r['warning']}")
    for (system, phase, _), r in best.items():
        if phase == "seq" and "pragmas" in r and "error" not in r:
            print(f"  {system} pragmas: {r['pragmas']}")
    print("\nkill-to-complete recovery (two worker processes, SIGKILL mid-step):")
    for i, t in enumerate(recovery, 1):
        if "error" in t:
            print(f"  trial {i}: ERROR {t['error'][:500]}")
            continue
        at = t["seconds_to_ended_at"]
        extra = "" if at is None else f" (run.ended_at - kill: {at:.2f} s)"
        print(
            f"  trial {i}: {t['seconds']:.2f} s until result(){extra}; killed pid"
            f" {t['killed_pid']}, finished by {t['finished_by']}, ok={t['ok']}"
        )
    print("\nratios (figures of one round; the best round shown, every round in brackets):")
    for row in report:
        mark = {True: "PASS", False: "MISS", None: "    "}[row["ok"]]
        rounds = ", ".join(f"{v:.2f}" for v in row["rounds"])
        print(
            f"  {mark} {row['ratio']:64} {row['value']:7.2f}  target {row['target']:22}"
            f" {row['note']}  [{rounds}]"
        )
    if not report:
        print("  (no ratios: see errors above)")


def _environment(runs: int, rounds: int) -> dict[str, Any]:
    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "runs": runs,
        "rounds": rounds,
        "steps_per_run": STEPS,
        "lanes": LANES,
        "load": round(os.getloadavg()[0], 2),
    }
    for dist in ("dbos", "tether", "sqlalchemy"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            env[dist] = version(dist)
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(HERE.parent)]
        env["tether_commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", "../src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        if changed:
            env["tether_commit"] += f"+{len(changed)}-uncommitted-files-in-src"
    return env


def _environment_line(runs: int, rounds: int) -> str:
    env = _environment(runs, rounds)
    return " ".join(f"{k}={v}" for k, v in env.items())


if __name__ == "__main__":
    main()

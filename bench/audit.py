"""How long ``tether.audit.runs`` takes on a store of 1,000,000 attempts, and its memory.

    python bench/audit.py                       # 1,000,000 attempts, SQLite under $TMPDIR
    python bench/audit.py --attempts 200000     # a smaller store
    python bench/audit.py --store /tmp/a.db --keep   # keep the file (generated once)
    python bench/audit.py --postgres postgresql://postgres@127.0.0.1:5432/test

The store is written directly with SQL (tether's own schema, created by its migrations):
runs of five functions over the last 7 days, each with six ``run`` steps, one
``ctx.step.llm``-shaped step (an ``LLMResponse`` with one to three attempts, some a 429
with its wait or a failed primary and a fallback), and a durable sleep in one run of ten.
A step has 0, 1 or 2 failed attempts before it succeeds (62/28/10%); 2% of runs fail
for good at a step (three failed attempts). An attempt is a step execution: a failed one
(a row of ``attempts``) or the successful one (the step's own row); the LLM calls'
attempts are counted apart. Generation stops at the run that reaches ``--attempts``.

The audit is timed on a fresh process-level read (the store is closed and reopened), and
its peak Python memory is taken with ``tracemalloc`` in a second pass (tracing slows
Python down, so it is not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import tether
import tether.audit
from tether.store import open_store

FUNCTIONS = ["triage", "summarize", "enrich", "notify", "agent"]
ERRORS = [
    ("ConnectionError", "upstream refused the connection"),
    ("TimeoutError", "step callable ran over its timeout of 10s"),
    (
        "HTTPStatusError",
        "Server error '503 Service Unavailable' for url 'https://api.example.com/v1'",
    ),
]
WEEK = 7 * 86400.0


def _llm_output(rng: random.Random, start: float) -> tuple[str, float]:
    """An LLMResponse JSON (as ``ctx.step.llm`` checkpoints it) and the call's duration."""
    attempts: list[dict[str, Any]] = []
    t = start
    shape = rng.random()
    plan: list[tuple[str, bool, str | None, dict[str, float]]] = []
    if shape < 0.10:  # a 429 with Retry-After, then success on the same model
        plan = [
            ("openai:gpt-4.1-mini", False, "rate_limited", {}),
            ("openai:gpt-4.1-mini", True, None, {"retry_after": 1.0}),
        ]
    elif shape < 0.15:  # the primary fails, the fallback answers
        plan = [
            ("openai:gpt-4.1-mini", False, "server_error", {}),
            ("anthropic:claude-sonnet-4-5", True, None, {}),
        ]
    else:
        plan = [("openai:gpt-4.1-mini", True, None, {})]
    for n, (model, ok, cls, waits) in enumerate(plan, start=1):
        t += sum(waits.values())
        duration = rng.uniform(0.3, 1.5) if ok else rng.uniform(0.05, 0.3)
        attempts.append(
            {
                "number": n,
                "model": model,
                "provider": model.split(":")[0],
                "started_at": t,
                "duration_s": duration,
                "ok": ok,
                "error_class": cls,
                "error_type": None if ok else "ProviderError",
                "error_message": None
                if ok
                else f"{cls}: HTTP {429 if cls == 'rate_limited' else 500}",
                "status": None if ok else (429 if cls == "rate_limited" else 500),
                "action": None if ok else ("retry" if cls == "rate_limited" else "failover"),
                "retry_after_s": 1.0 if cls == "rate_limited" else None,
                "usage": {
                    "input_tokens": 500,
                    "cached_input_tokens": 0,
                    "cache_write_tokens": 0,
                    "output_tokens": 50 if ok else 0,
                    "reasoning_tokens": 0,
                },
                "cost_usd": 0.00028 if ok else 0.0002,
                "waits": waits,
                "fallback": model.startswith("anthropic"),
                "circuit_opened": False,
            }
        )
        t += duration
    response = {
        "text": '{"label": "billing"}',
        "parsed": None,
        "tool_calls": [],
        "usage": {
            "input_tokens": 500 * len(plan),
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 50,
            "reasoning_tokens": 0,
        },
        "cost_usd": sum(a["cost_usd"] for a in attempts),
        "model": plan[-1][0],
        "provider": plan[-1][0].split(":")[0],
        "finish_reason": "stop",
        "attempts": attempts,
    }
    return json.dumps(response, separators=(",", ":")), t - start


def generate(
    conn: sqlite3.Connection | Any, target: int, seed: int = 7, mark: str = "?"
) -> dict[str, int]:
    """Insert runs until ``target`` attempts exist; returns what was written."""
    rng = random.Random(seed)
    now = time.time()
    counts = {"runs": 0, "steps": 0, "attempt_rows": 0, "attempts": 0, "llm_attempts": 0}
    runs: list[tuple[Any, ...]] = []
    steps: list[tuple[Any, ...]] = []
    attempts: list[tuple[Any, ...]] = []

    def flush() -> None:
        def q(sql: str) -> str:
            return sql.replace("?", mark)

        conn.executemany(
            q(
                "INSERT INTO runs (id, function_id, status, event_name, event_ts, input, output, error, "
                "created_at, started_at, ended_at, lease_token) VALUES (?,?,?,?,?,?,?,?,?,?,?,1)"
            ),
            runs,
        )
        conn.executemany(
            q(
                "INSERT INTO steps (run_id, step_id, seq, kind, status, output, error, started_at, ended_at) "
                "VALUES (?,?,?,?,?,?,?,?,?)"
            ),
            steps,
        )
        conn.executemany(
            q(
                "INSERT INTO attempts (run_id, step_id, number, started_at, ended_at, error_type, "
                "error_message, traceback) VALUES (?,?,?,?,?,?,?,?)"
            ),
            attempts,
        )
        runs.clear()
        steps.clear()
        attempts.clear()

    while counts["attempts"] < target:
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        function = FUNCTIONS[counts["runs"] % len(FUNCTIONS)]
        created = now - WEEK + WEEK * counts["runs"] / max(1, target // 10)
        created = min(created, now - 60)
        t = created + rng.uniform(0.001, 0.05)  # queue time
        started = t
        status, error = "completed", None
        seq = 0
        fatal_at = rng.randrange(6) if rng.random() < 0.02 else -1
        for i in range(6):
            seq += 1
            step_id = f"step-{i + 1}"
            failures = 3 if i == fatal_at else rng.choices([0, 1, 2], [62, 28, 10])[0]
            first = t
            for n in range(failures):
                d = rng.uniform(0.01, 0.2)
                etype, msg = ERRORS[rng.randrange(len(ERRORS))]
                attempts.append((run_id, step_id, n, t, t + d, etype, msg, "Traceback ..."))
                counts["attempt_rows"] += 1
                counts["attempts"] += 1
                t += d + (0.5 * 2**n if n + 1 < 3 else 0.0)  # exponential backoff, no jitter
            if i == fatal_at:
                err = json.dumps({"type": ERRORS[0][0], "message": ERRORS[0][1]})
                steps.append((run_id, step_id, seq, "run", "failed", None, err, first, t))
                status = "failed"
                error = json.dumps({"type": "StepFailed", "message": f"step {step_id!r} failed"})
                break
            d = rng.uniform(0.005, 0.5)
            steps.append((run_id, step_id, seq, "run", "completed", json.dumps(i), None, t, t + d))
            counts["attempts"] += 1
            t += d
        if status == "completed":
            seq += 1
            output, d = _llm_output(rng, t)
            steps.append((run_id, "classify", seq, "run", "completed", output, None, t, t + d))
            counts["attempts"] += 1
            counts["llm_attempts"] += output.count('"number":')
            t += d
            if counts["runs"] % 10 == 0:
                seq += 1
                steps.append(
                    (run_id, "cool-off", seq, "sleep", "completed", "null", None, t, t + 600)
                )
                t += 600
        counts["steps"] += seq
        runs.append(
            (
                run_id,
                function,
                status,
                "tether/function.invoked",
                created,
                "{}",
                "{}" if status == "completed" else None,
                error,
                created,
                started,
                t,
            )
        )
        counts["runs"] += 1
        if len(steps) > 50_000:
            flush()
    flush()
    return counts


def build_sqlite(path: Path, target: int) -> dict[str, int]:
    open_store(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    counts = generate(conn, target)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return counts


def build_postgres(url: str, target: int) -> dict[str, int]:
    import psycopg

    open_store(url).close()
    from urllib.parse import parse_qs, urlsplit

    schema = parse_qs(urlsplit(url).query).get("schema", [None])[0]
    with psycopg.connect(url.split("?", 1)[0]) as conn:
        if schema:
            conn.execute(f'SET search_path TO "{schema}"')
        with conn.cursor() as cur:
            counts = generate(cur, target, mark="%s")
        conn.execute("ANALYZE")
    return counts


def measure(url: str) -> dict[str, Any]:
    th = tether.Harness(url)
    try:
        started = time.perf_counter()
        audit = tether.audit.runs(th)
        elapsed = time.perf_counter() - started
        tracemalloc.start()
        tether.audit.runs(th)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        th.close()
    return {"seconds": round(elapsed, 2), "peak_mb": round(peak / 2**20, 1), "audit": audit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, help="SQLite file to build (or reuse with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) --store")
    parser.add_argument(
        "--postgres", help="a PostgreSQL URL (?schema=NAME) to build and audit instead"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            url = args.postgres
            t0 = time.perf_counter()
            counts = build_postgres(url, args.attempts)
        else:
            path = args.store or Path(tmp) / "audit.db"
            url = f"sqlite:///{path}"
            t0 = time.perf_counter()
            if args.keep and path.exists():
                counts = {}
            else:
                if path.exists():
                    path.unlink()
                counts = build_sqlite(path, args.attempts)
        built = time.perf_counter() - t0
        result = measure(url)
        audit = result.pop("audit")
        size = os.path.getsize(url.split("///", 1)[1]) if url.startswith("sqlite") else None
        doc = {
            "store": "postgres" if args.postgres else "sqlite",
            **counts,
            "build_s": round(built, 1),
            "store_mb": round(size / 2**20, 1) if size else None,
            "audit_s": result["seconds"],
            "peak_python_mb": result["peak_mb"],
            "runs_audited": audit.runs,
            "reliability_tax": audit.reliability_tax,
            "tax_by_cause": audit.tax_by_cause,
        }
        print(json.dumps(doc, indent=2))
        if args.json:
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
        if not args.postgres and args.keep and args.store:
            print(f"kept {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

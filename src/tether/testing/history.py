"""``fill_history``: a store full of old finished runs, written with bulk SQL inserts.

For testing and measuring retention (``tether prune``, ``bench/prune.py``) without
executing a million runs: each run is ``completed`` with ``steps`` steps of ``attempts``
attempts each (the failed ones with a short traceback), ended at ``ended_at``, written
``batch`` runs to a transaction through the store's own executor (both backends).
"""

from __future__ import annotations

from collections.abc import Callable

from tether.store.executor import Tx
from tether.store.sql import SQLStore

PAYLOAD = '{"text": "' + "x" * 200 + '"}'


def fill_history(
    store: SQLStore,
    runs: int,
    *,
    steps: int = 2,
    attempts: int = 2,
    ended_at: float = 0.0,
    function_id: str = "old",
    prefix: str = "old-",
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``runs`` finished runs; returns the number of attempts written."""
    codec = store.codec
    payload = codec.encode(PAYLOAD)
    trace = codec.encode("Traceback (most recent call last):\n  RuntimeError: flaky")
    written = 0
    for start in range(0, runs, batch):
        ids = [f"{prefix}{n:09d}" for n in range(start, min(runs, start + batch))]

        def op(tx: Tx, ids: list[str] = ids) -> None:
            tx.many(
                "INSERT INTO runs (id, function_id, status, event_name, event_ts, input, "
                "output, created_at, started_at, ended_at) "
                "VALUES (?, ?, 'completed', 'tether/function.invoked', ?, ?, ?, ?, ?, ?)",
                [
                    (rid, function_id, ended_at, payload, payload, ended_at, ended_at, ended_at)
                    for rid in ids
                ],
            )
            tx.many(
                "INSERT INTO steps (run_id, step_id, seq, kind, status, output, started_at, "
                "ended_at) VALUES (?, ?, ?, 'run', 'completed', ?, ?, ?)",
                [
                    (rid, f"s{i}", i, payload, ended_at, ended_at)
                    for rid in ids
                    for i in range(steps)
                ],
            )
            tx.many(
                "INSERT INTO attempts (run_id, step_id, number, started_at, ended_at, "
                "error_type, error_message, traceback) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (rid, f"s{i}", a, ended_at, ended_at, *_failure(a, attempts, trace))
                    for rid in ids
                    for i in range(steps)
                    for a in range(attempts)
                ],
            )

        store.write(op)
        written += len(ids) * steps * attempts
        if progress is not None:
            progress(written)
    return written


def _failure(number: int, attempts: int, trace: str) -> tuple[str | None, str | None, str | None]:
    if number == attempts - 1:
        return None, None, None  # the last attempt succeeded
    return "RuntimeError", "flaky", trace


__all__ = ["fill_history"]

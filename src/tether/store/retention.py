"""Retention: deleting what the store keeps once it is older than a cutoff, kind by kind.

Each kind is one ``Pruner``: a ``find`` that reads (on a read connection, outside the
write lock) the next few things that may go, and a ``delete`` that removes a chunk of
them in one short write transaction, checking again in that transaction that each one
may still go (a run still finished, an experiment still not in progress, a thread still
untouched). The driver (``prune``) walks the kinds in order, sizes the chunks so that one
write holds the lock for about ``TARGET_S`` seconds, and pauses between chunks so that
workers' writes go first: workers keep going during a prune.

Kinds (``KINDS``, in the order they are pruned) and what stays:

- ``experiments``: finished experiments (``tether.eval.experiment`` runs) ended before the
  cutoff, with their cases' runs and the task runs they link to, except the latest
  ``keep_experiments`` of each evaluation and any experiment named as a baseline
  (``evals.compare`` records its baseline). An experiment in progress or interrupted
  (resumable) is never touched. Runs left by an interrupted prune of an experiment (the
  experiment's own run went first) are swept here.
- ``online_scores``: runs of ``tether.eval.online.*`` ended before the cutoff.
- ``runs``: finished runs ended before the cutoff with their steps, attempts, cancel
  registrations, takeovers and stored trace context; runs of experiments are the
  ``experiments`` kind's (a kept experiment keeps the runs it links to).
- ``events``: events received before the cutoff (and over 24 hours ago, for
  deduplication) that no live run (queued, running, sleeping, waiting) was triggered by.
- ``langgraph``: ``TetherSaver`` checkpoints (with their pending writes) older than the
  cutoff, except the newest of each thread and namespace; a thread untouched since the
  cutoff goes whole.
- ``breakers``: circuit-breaker and rate-limit hold records whose every deadline (window,
  open period, probe, hold) passed before the cutoff: the same as no record.
- ``memory``: memory versions superseded (``Memory.update``) before the cutoff; current
  versions are never pruned by age (``Memory.delete`` and ``Subject.forget`` remove them).
- ``windows``: a context window untouched since the cutoff (its own ``ttl`` first) is
  cleared in batches, as ``clear()`` does (its row stays, its generation moves on); in a
  window in use, items older than the cutoff that its summary in force stands for go
  (whole tool-call units; pins, the summary and turns it keeps verbatim stay).

Adding a kind is one ``Pruner`` in ``KINDS``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.codec import loads
from tether.errors import ConfigurationError
from tether.store.executor import Tx
from tether.store.sql import SQLStore

TERMINAL = "('completed', 'failed', 'cancelled', 'skipped')"
DAY = 86400.0
TARGET_S = 0.01  # a write batch holds the lock for about this long
PAUSE = 4.0  # after each read or write the prune waits this many times as long: it takes
# at most a fifth of the write lock and of a core, and workers' writes go first
FIRST_CHUNK, MIN_CHUNK, MAX_CHUNK = 50, 10, 5000
READ_LIMIT = 2000  # keys read per find
KEEP_EXPERIMENTS = 5  # the latest experiments kept per evaluation

EXPERIMENT_FN = "tether.eval.experiment"
ONLINE_PREFIX = "tether.eval.online."
BASELINE_PREFIX = "tether.eval.baseline:"  # kv: an experiment named as a baseline
TRACE_PREFIX = "otel.trace:"  # kv: a run's trace context
CIRCUIT_PREFIX = "tether.llm.circuit:"
EVAL_RUNS = "function_id LIKE 'tether.eval.%' OR id LIKE 'eval-%-task'"


def nbytes(d: str, column: str) -> str:
    """The stored size of a text column in bytes (0 for NULL)."""
    if d == "postgres":
        return f"COALESCE(octet_length({column}), 0)"
    return f"COALESCE(length(CAST({column} AS BLOB)), 0)"


def bytewise(tx: Tx, column: str) -> str:
    """``column`` compared byte by byte: id ranges such as ``eval-<key>-`` .. ``eval-<key>.``
    must not depend on a PostgreSQL database's collation (which may ignore punctuation)."""
    return f'{column} COLLATE "C"' if tx.d.name == "postgres" else column


@dataclass
class Job:
    """One kind's prune: its cutoff and settings, and state kept between its chunks."""

    kind: str
    before: float  # things older than this go
    now: float
    keep_experiments: int = KEEP_EXPERIMENTS
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Found:
    """What ``find`` read: keys that may go, their bytes, where to read on from (None: this
    kind is done), and counts of dependents that would go with them (for dry runs)."""

    keys: list[Any]
    bytes: dict[Any, int]
    cursor: Any
    also: dict[str, int] = field(default_factory=dict)


Find = Callable[[Tx, Job, Any], Found]
Delete = Callable[[Tx, Job, Sequence[Any]], tuple[list[Any], dict[str, int]]]


@dataclass(frozen=True)
class Pruner:
    """A kind: ``find(tx, job, cursor) -> Found`` on a read connection and ``delete(tx, job,
    keys) -> (keys deleted, counts of dependents deleted)`` in a write transaction."""

    kind: str
    find: Find
    delete: Delete
    what: str  # in words, for --help and errors


class PruneResult(dict[str, int]):
    """Counts per kind (``result["runs"]``, ``result["steps"]``, ...), as ``Harness.prune``
    always returned, with ``bytes`` per kind, whether it was a ``dry_run``, the number of
    write ``batches`` and the ``longest_batch_s`` (seconds one write held the lock)."""

    def __init__(self, dry_run: bool) -> None:
        super().__init__()
        self.dry_run = dry_run
        self.bytes: dict[str, int] = {}
        self.batch_times: list[float] = []  # seconds each write batch held the lock
        self.batch_cpu: list[float] = []  # ... and the CPU seconds it used meanwhile

    @property
    def batches(self) -> int:
        return len(self.batch_times)

    @property
    def longest_batch_s(self) -> float:
        return max(self.batch_times, default=0.0)

    def batch_quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the batches' lock times, in seconds."""
        if not self.batch_times:
            return 0.0
        ordered = sorted(self.batch_times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def add(self, kind: str, count: int, size: int = 0) -> None:
        self[kind] = self.get(kind, 0) + count
        if size or kind not in self.bytes:
            self.bytes[kind] = self.bytes.get(kind, 0) + size


# -- runs and what belongs to them -------------------------------------------------------
def delete_runs(tx: Tx, ids: Sequence[str], guard: str, params: Sequence[Any]) -> list[str]:
    """Delete the runs of ``ids`` that are finished and pass ``guard`` (SQL over runs, with
    ``params``).
    Returns the ids deleted (``_run_dependents`` then deletes what belonged to them)."""
    if not ids:
        return []
    cond, ps = tx.in_("id", list(ids))
    rows = tx.all(
        f"DELETE FROM runs WHERE {cond} AND status IN {TERMINAL} AND ({guard}) RETURNING id",
        (*ps, *params),
    )
    return [r[0] for r in rows]


def _run_dependents(tx: Tx, gone: list[str]) -> dict[str, int]:
    if not gone:
        return {"steps": 0}
    cond, ps = tx.in_("run_id", gone)
    steps = tx.changed(f"DELETE FROM steps WHERE {cond}", ps)
    tx.execute(f"DELETE FROM attempts WHERE {cond}", ps)
    tx.execute(f"DELETE FROM cancel_waits WHERE {cond}", ps)
    keys, kps = tx.in_("key", [TRACE_PREFIX + r for r in gone])
    tx.execute(f"DELETE FROM kv WHERE {keys}", kps)
    return {"steps": steps}


def _run_sizes(tx: Tx, ids: list[str]) -> tuple[dict[Any, int], int]:
    """Bytes per run (its payloads, its steps' and attempts') and the number of steps."""
    if not ids:
        return {}, 0
    d = tx.d.name
    cond, ps = tx.in_("id", ids)
    sizes: dict[Any, int] = {}
    for rid, size in tx.all(
        f"SELECT id, {nbytes(d, 'input')} + {nbytes(d, 'output')} + {nbytes(d, 'error')} "
        f"FROM runs WHERE {cond}",
        ps,
    ):
        sizes[rid] = int(size)
    rcond, rps = tx.in_("run_id", ids)
    steps = 0
    for rid, n, size in tx.all(
        f"SELECT run_id, count(*), SUM({nbytes(d, 'output')} + {nbytes(d, 'error')}) "
        f"FROM steps WHERE {rcond} GROUP BY run_id",
        rps,
    ):
        sizes[rid] = sizes.get(rid, 0) + int(size or 0)
        steps += int(n)
    for rid, size in tx.all(
        f"SELECT run_id, SUM({nbytes(d, 'error_message')} + {nbytes(d, 'traceback')}) "
        f"FROM attempts WHERE {rcond} GROUP BY run_id",
        rps,
    ):
        sizes[rid] = sizes.get(rid, 0) + int(size or 0)
    return sizes, steps


def _runs_by_seq(where: str) -> Find:
    """A find over finished runs ended before the cutoff that match ``where``, by ``seq``."""

    def find(tx: Tx, job: Job, cursor: Any) -> Found:
        rows = tx.all(
            f"SELECT seq, id FROM runs WHERE seq > ? AND ended_at < ? AND status IN {TERMINAL} "
            f"AND ({where}) ORDER BY seq LIMIT {READ_LIMIT}",
            (cursor or 0, job.before),
        )
        ids = [r[1] for r in rows]
        sizes, steps = _run_sizes(tx, ids)
        return Found(ids, sizes, rows[-1][0] if len(rows) == READ_LIMIT else None, {"steps": steps})

    return find


def _runs_delete(where: str) -> Delete:
    def delete(tx: Tx, job: Job, keys: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
        gone = delete_runs(tx, [str(k) for k in keys], f"ended_at < ? AND ({where})", (job.before,))
        return list(gone), _run_dependents(tx, gone)

    return delete


USER_RUNS = f"NOT ({EVAL_RUNS})"
ONLINE_RUNS = f"function_id LIKE '{ONLINE_PREFIX}%'"


# -- experiments -------------------------------------------------------------------------
def _experiment_victims(tx: Tx, job: Job) -> list[str]:
    """The experiment run ids that go: finished before the cutoff, not among the latest
    ``keep_experiments`` finished ones of their evaluation, not named as a baseline."""
    baselines = {
        k[len(BASELINE_PREFIX) :]
        for (k,) in tx.all(
            f"SELECT key FROM kv WHERE {bytewise(tx, 'key')} >= ? AND {bytewise(tx, 'key')} < ?",
            (BASELINE_PREFIX, BASELINE_PREFIX[:-1] + ";"),
        )
    }
    by_eval: dict[str, list[tuple[float, str, bool]]] = {}
    for rid, status, created, ended, data in tx.all(
        "SELECT id, status, created_at, ended_at, input FROM runs WHERE function_id=?",
        (EXPERIMENT_FN,),
    ):
        try:
            d = loads(tx.codec.decode(data))
        except (ValueError, TypeError):
            d = {}
        d = d if isinstance(d, dict) else {}
        if status not in ("completed", "failed", "cancelled") or ended is None:
            continue  # in progress or interrupted (resumable): never pruned, not counted
        old = ended < job.before and str(d.get("experiment", "")) not in baselines
        by_eval.setdefault(str(d.get("evaluation", "")), []).append((created, rid, old))
    victims: list[str] = []
    for items in by_eval.values():
        items.sort(reverse=True)  # newest first: the latest finished ones stay
        victims += [rid for _, rid, old in items[job.keep_experiments :] if old]
    return sorted(victims)


def _family(rid: str) -> tuple[str, str]:
    """The id range of an experiment's case and task runs (``eval-<key>-...``)."""
    return rid + "-", rid + "."


def _find_experiments(tx: Tx, job: Job, cursor: Any) -> Found:
    if "victims" not in job.state:
        job.state["victims"] = _experiment_victims(tx, job)
    victims: list[str] = job.state["victims"]
    index, after = cursor or (0, "")
    nxt: tuple[int, str] | None
    if index < len(victims):
        rid = victims[index]
        low, high = _family(rid)
        rows = tx.all(
            f"SELECT id FROM runs WHERE {bytewise(tx, 'id')} > ? AND {bytewise(tx, 'id')} < ? "
            f"ORDER BY {bytewise(tx, 'id')} LIMIT {READ_LIMIT}",
            (max(after, low), high),
        )
        ids = ([rid] if not after else []) + [r[0] for r in rows]
        nxt = (index, rows[-1][0]) if len(rows) == READ_LIMIT else (index + 1, "")
    else:  # the sweep: runs of experiments whose own run is gone
        rows = tx.all(
            f"SELECT id FROM runs WHERE {bytewise(tx, 'id')} > ? AND {bytewise(tx, 'id')} < 'eval.' "
            f"AND status IN {TERMINAL} "
            f"AND ended_at < ? AND function_id <> ? AND function_id NOT LIKE '{ONLINE_PREFIX}%' "
            f"AND substr(id, 1, {HEAD_LEN}) NOT IN (SELECT id FROM runs WHERE function_id=?) "
            f"ORDER BY {bytewise(tx, 'id')} LIMIT {READ_LIMIT}",
            (max(after, "eval-"), job.before, EXPERIMENT_FN, EXPERIMENT_FN),
        )
        ids = [r[0] for r in rows]
        nxt = (index, rows[-1][0]) if len(rows) == READ_LIMIT else None
    sizes, steps = _run_sizes(tx, ids)
    heads = sum(1 for i in ids if _is_head(i))
    also = {"steps": steps, "experiments": heads, "experiment_runs": len(ids) - heads}
    return Found(ids, sizes, nxt, also)


def _is_head(rid: str) -> bool:
    """An experiment's own run id (``eval-`` and 16 hex digits), not one of its cases'."""
    return len(rid) == HEAD_LEN


HEAD_LEN = len("eval-") + 16


def _delete_experiments(tx: Tx, job: Job, keys: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """An experiment's own run goes in the chunk with its first runs; later chunks delete
    the rest only while the experiment's run is still absent (not started again)."""
    ids = [str(k) for k in keys]
    heads = [i for i in ids if _is_head(i)]
    gone = delete_runs(tx, heads, "function_id=? AND ended_at < ?", (EXPERIMENT_FN, job.before))
    present: set[str] = set()
    prefixes = sorted({i[:HEAD_LEN] for i in ids if not _is_head(i)})
    if prefixes:
        cond, ps = tx.in_("id", prefixes)
        present = {r[0] for r in tx.all(f"SELECT id FROM runs WHERE {cond}", ps)}
    family = [i for i in ids if not _is_head(i) and i[:HEAD_LEN] not in present]
    cases = delete_runs(tx, family, "1=1", ())
    counts = _run_dependents(tx, gone + cases)
    counts["experiments"] = len(gone)
    counts["experiment_runs"] = len(cases)
    return gone + cases, counts


# -- events ------------------------------------------------------------------------------
LIVE_RUN = f"SELECT 1 FROM runs WHERE runs.event_id = events.id AND runs.status NOT IN {TERMINAL}"


def _event_cutoff(job: Job) -> float:
    return min(job.before, job.now - DAY)  # ids seen in the last 24 h stay, for dedup


def _find_events(tx: Tx, job: Job, cursor: Any) -> Found:
    at, eid = cursor or (float("-inf"), "")
    rows = tx.all(
        f"SELECT received_at, id, {nbytes(tx.d.name, 'data')} FROM events "
        "WHERE received_at < ? AND (received_at > ? OR (received_at = ? AND id > ?)) "
        f"AND NOT EXISTS ({LIVE_RUN}) ORDER BY received_at, id LIMIT {READ_LIMIT}",
        (_event_cutoff(job), at, at, eid),
    )
    nxt = (rows[-1][0], rows[-1][1]) if len(rows) == READ_LIMIT else None
    return Found([r[1] for r in rows], {r[1]: int(r[2]) for r in rows}, nxt)


def _delete_events(tx: Tx, job: Job, keys: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    cond, ps = tx.in_("id", list(keys))
    rows = tx.all(
        f"DELETE FROM events WHERE {cond} AND received_at < ? AND NOT EXISTS ({LIVE_RUN}) "
        "RETURNING id",
        (*ps, _event_cutoff(job)),
    )
    return [r[0] for r in rows], {}


# -- LangGraph checkpoints ----------------------------------------------------------------
def uuid_time(checkpoint_id: str) -> float | None:
    """When a LangGraph checkpoint id (a UUID v6, or v1) was made, in epoch seconds."""
    try:
        u = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if u.version == 6:
        ticks = ((u.int >> 80) << 12) | ((u.int >> 64) & 0x0FFF)
    elif u.version == 1:
        ticks = u.time
    else:
        return None
    return (ticks - 0x01B21DD213814000) / 1e7


def _find_langgraph(tx: Tx, job: Job, cursor: Any) -> Found:
    threads = [
        r[0]
        for r in tx.all(
            "SELECT DISTINCT thread_id FROM langgraph_checkpoints WHERE thread_id > ? "
            "ORDER BY thread_id LIMIT 50",
            (cursor or "",),
        )
    ]
    if not threads:
        return Found([], {}, None)
    d = tx.d.name
    cond, ps = tx.in_("c.thread_id", threads)
    rows = tx.all(
        "SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.created_at, "
        f"{nbytes(d, 'c.checkpoint')} + {nbytes(d, 'c.metadata')} + COALESCE((SELECT "
        f"SUM({nbytes(d, 'w.value')}) FROM langgraph_writes w WHERE w.thread_id=c.thread_id "
        "AND w.checkpoint_ns=c.checkpoint_ns AND w.checkpoint_id=c.checkpoint_id), 0) "
        f"FROM langgraph_checkpoints c WHERE {cond}",
        ps,
    )
    by_thread: dict[str, list[tuple[str, str, float, int]]] = {}
    for thread, ns, cid, created, size in rows:
        at = created if created is not None else (uuid_time(cid) or job.now)
        by_thread.setdefault(thread, []).append((ns, cid, at, int(size)))
    keys: list[Any] = []
    sizes: dict[Any, int] = {}
    for thread, items in by_thread.items():
        touched = max(at for _, _, at, _ in items) >= job.before
        newest: dict[str, str] = {}
        for ns, cid, _, _ in items:
            newest[ns] = max(newest.get(ns, cid), cid)
        for ns, cid, at, size in items:
            if not touched or (at < job.before and newest[ns] != cid):
                key = (thread, ns, cid, touched)
                keys.append(key)
                sizes[key] = size
    nxt = threads[-1] if len(threads) == 50 else None
    return Found(keys, sizes, nxt)


def _delete_langgraph(tx: Tx, job: Job, keys: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """Checkpoints of untouched threads go only if the thread is still untouched; the
    newest of a namespace was never a key."""
    recent: dict[str, bool] = {}
    gone: list[Any] = []
    for thread, ns, cid, touched in keys:
        if not touched:
            if thread not in recent:
                row = tx.one(
                    "SELECT 1 FROM langgraph_checkpoints WHERE thread_id=? AND created_at >= ?",
                    (thread, job.before),
                )
                recent[thread] = row is not None
            if recent[thread]:
                continue
        for table in ("langgraph_writes", "langgraph_checkpoints"):
            tx.execute(
                f"DELETE FROM {table} WHERE thread_id=? AND checkpoint_ns=? AND checkpoint_id=?",
                (thread, ns, cid),
            )
        gone.append((thread, ns, cid, touched))
    return gone, {}


# -- circuit breakers and rate-limit holds ------------------------------------------------
def _breaker_expired(value: str, before: float) -> bool:
    try:
        st = json.loads(value)
        last = max(
            float(st.get(k) or 0.0)
            for k in ("window_start", "open_until", "probe_until", "hold_until")
        )
    except (ValueError, TypeError, AttributeError):
        return False
    return last < before


def _find_breakers(tx: Tx, job: Job, cursor: Any) -> Found:
    rows = tx.all(
        f"SELECT key, value FROM kv WHERE {bytewise(tx, 'key')} > ? AND {bytewise(tx, 'key')} < ? "
        f"ORDER BY {bytewise(tx, 'key')} LIMIT {READ_LIMIT}",
        (cursor or CIRCUIT_PREFIX, CIRCUIT_PREFIX[:-1] + ";"),
    )
    keys = [(k, v) for k, v in rows if _breaker_expired(v, job.before)]
    nxt = rows[-1][0] if len(rows) == READ_LIMIT else None
    return Found(keys, {k: len(k[0]) + len(k[1]) for k in keys}, nxt)


def _delete_breakers(tx: Tx, job: Job, keys: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    gone = [k for k in keys if tx.changed("DELETE FROM kv WHERE key=? AND value=?", k)]
    return gone, {}


# -- superseded memory versions ------------------------------------------------------------
def _find_memory(tx: Tx, job: Job, cursor: Any) -> Found:
    d = tx.d.name
    rows = tx.all(
        f"SELECT seq, {nbytes(d, 'text')} + {nbytes(d, 'source')} FROM memories "
        "WHERE seq > ? AND superseded_at IS NOT NULL AND superseded_at < ? "
        f"ORDER BY seq LIMIT {READ_LIMIT}",
        (cursor or 0, job.before),
    )
    nxt = rows[-1][0] if len(rows) == READ_LIMIT else None
    return Found([r[0] for r in rows], {r[0]: int(r[1]) for r in rows}, nxt)


def _delete_memory(tx: Tx, job: Job, keys: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """Superseded versions only (never in the full-text index; their vectors went when they
    were superseded): the current version keeps its ``supersedes`` id, naming a version
    that retention removed."""
    cond, ps = tx.in_("seq", list(keys))
    rows = tx.all(
        f"DELETE FROM memories WHERE {cond} AND superseded_at IS NOT NULL "
        "AND superseded_at < ? RETURNING seq",
        (*ps, job.before),
    )
    gone = [r[0] for r in rows]
    if gone:
        vcond, vps = tx.in_("memory_seq", gone)
        tx.execute(f"DELETE FROM memory_vectors WHERE {vcond}", vps)
    return gone, {}


# -- context windows -----------------------------------------------------------------------
def _window_cutoff(job: Job, ttl: float | None) -> float:
    return job.now - ttl if ttl is not None else job.before


def _summary_cover(tx: Tx, key: str, subject: str | None, summary_seq: int) -> tuple[int, set[int]]:
    """The last seq the window's summary in force stands for, moved back so that no tool
    call at or before it has its result after it (a unit goes whole or not at all), and
    the seqs the summary keeps verbatim."""
    from tether.store.windows import ITEM_COLUMNS, decode

    row = tx.one(
        f"SELECT {ITEM_COLUMNS} FROM window_items WHERE window_key=? AND seq=?",
        (key, summary_seq),
    )
    if row is None:
        return 0, set()
    item = decode(tx.codec, row, subject)
    through = min(item.through_seq or 0, summary_seq - 1)
    while through > 0:
        split = tx.one(
            "SELECT min(call_seq) FROM window_calls WHERE window_key=? AND call_seq <= ? "
            "AND (result_seq IS NULL OR result_seq > ?)",
            (key, through, through),
        )
        if split is None or split[0] is None:
            break
        through = int(split[0]) - 1
    return through, {int(k) for k in item.kept}


def _find_windows(tx: Tx, job: Job, cursor: Any) -> Found:
    d = tx.d.name
    rows = tx.all(
        "SELECT key, subject, updated_at, ttl, summary_seq, last_seq, generation FROM windows "
        "WHERE key > ? ORDER BY key LIMIT 100",
        (cursor or "",),
    )
    keys: list[Any] = []
    sizes: dict[Any, int] = {}
    untouched = 0
    for key, subject, updated, ttl, summary_seq, last_seq, generation in rows:
        cutoff = _window_cutoff(job, ttl)
        if updated < cutoff:  # untouched: cleared whole, in batches (its row stays)
            found = tx.all(
                f"SELECT seq, {nbytes(d, 'payload')} FROM window_items WHERE window_key=? "
                "AND seq <= ? ORDER BY seq",
                (key, last_seq),
            )
            if not found:
                continue
            untouched += 1
            start = ("clear", key, 0, cutoff, generation)
            keys.append(start)
            sizes[start] = 0
        elif summary_seq is not None:  # in use: what its summary stands for, once old
            through, kept = _summary_cover(tx, key, subject, summary_seq)
            found = [
                (seq, size)
                for seq, size in tx.all(
                    f"SELECT seq, {nbytes(d, 'payload')} FROM window_items WHERE window_key=? "
                    "AND seq <= ? AND created_at < ? AND kind IN ('message', 'artifact', "
                    "'summary') ORDER BY seq",
                    (key, through, cutoff),
                )
                if seq not in kept
            ]
        else:
            continue
        for seq, size in found:
            item = ("item", key, int(seq), cutoff, generation)
            keys.append(item)
            sizes[item] = int(size)
    nxt = rows[-1][0] if len(rows) == 100 else None
    items = sum(1 for k in keys if k[0] == "item")
    return Found(keys, sizes, nxt, {"windows": items, "windows_cleared": untouched})


def set_window_ttl(
    store: SQLStore, key: str, ttl: Any, *, create: bool = False, subject: str | None = None
) -> bool:
    """Give window ``key`` its own retention age (a duration; None: the prune's age);
    ``create`` opens the window first (``th.context(key, ttl=...)``). False when there is
    no such window."""
    from tether.durations import seconds
    from tether.store.windows import open_window

    value = None if ttl is None else seconds(ttl, "ttl")
    if value is not None and value <= 0:
        raise ConfigurationError(
            f"ttl={ttl!r} would prune the window at once: give an age above zero, e.g. '90d'"
        )

    def op(tx: Tx) -> bool:
        if create:
            open_window(tx, key, subject, None, time.time())
        return bool(tx.changed("UPDATE windows SET ttl=? WHERE key=?", (value, key)))

    return bool(store.write(op))


def _delete_windows(tx: Tx, job: Job, keys: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """A ``clear`` key starts clearing an untouched window (still untouched, not cleared
    since): its tool calls and summary go and its generation moves on, as ``clear()`` does,
    so a process holding the window sees its copy is gone; its items follow in batches. An
    ``item`` key of a window in use goes only while the window was not cleared since (the
    summary in force only ever covers more)."""
    gone: list[Any] = []
    cleared = 0
    for key in keys:
        op, window, seq, cutoff, generation = key
        if op == "clear":
            n = tx.changed(
                "UPDATE windows SET generation=generation+1, summary_seq=NULL WHERE key=? "
                "AND updated_at < ? AND generation=?",
                (window, cutoff, generation),
            )
            if n:
                tx.execute("DELETE FROM window_calls WHERE window_key=?", (window,))
                cleared += 1
                gone.append(key)
            continue
        row = tx.one(
            "SELECT generation, updated_at, summary_seq FROM windows WHERE key=?", (window,)
        )
        if row is None:
            continue
        now_gen, updated, summary_seq = row
        ok = (now_gen == generation + 1 and updated < cutoff) or (
            now_gen == generation and summary_seq is not None and seq < summary_seq
        )
        if ok and tx.changed(
            "DELETE FROM window_items WHERE window_key=? AND seq=?", (window, seq)
        ):
            gone.append(key)
    items = sum(1 for k in gone if k[0] == "item")
    return gone, {"windows": items, "windows_cleared": cleared}


KINDS: dict[str, Pruner] = {
    p.kind: p
    for p in (
        Pruner(
            "experiments",
            _find_experiments,
            _delete_experiments,
            "finished experiments with their cases' runs (the latest of each evaluation and "
            "baselines stay)",
        ),
        Pruner(
            "online_scores",
            _runs_by_seq(ONLINE_RUNS),
            _runs_delete(ONLINE_RUNS),
            "online evaluation scores",
        ),
        Pruner(
            "runs", _runs_by_seq(USER_RUNS), _runs_delete(USER_RUNS), "finished runs with steps"
        ),
        Pruner("events", _find_events, _delete_events, "events no live run came from"),
        Pruner(
            "langgraph",
            _find_langgraph,
            _delete_langgraph,
            "LangGraph checkpoints (the newest of each thread stays while it is used)",
        ),
        Pruner("breakers", _find_breakers, _delete_breakers, "expired breaker and hold records"),
        Pruner("memory", _find_memory, _delete_memory, "superseded memory versions"),
        Pruner(
            "windows",
            _find_windows,
            _delete_windows,
            "context window items: whole windows untouched that long (a window's ttl first), "
            "and what the summary of a window in use stands for",
        ),
    )
}


# -- the driver ----------------------------------------------------------------------------
Progress = Callable[[str, int, int], None]  # (kind, things done so far, bytes so far)


def prune(
    store: SQLStore,
    cutoffs: dict[str, float],
    now: float,
    *,
    dry_run: bool = False,
    keep_experiments: int = KEEP_EXPERIMENTS,
    progress: Progress | None = None,
    pause: float = PAUSE,
) -> PruneResult:
    """Prune each kind of ``cutoffs`` (kind -> epoch seconds: older goes), in ``KINDS``
    order. ``dry_run`` reads only and counts what would go."""
    result = PruneResult(dry_run)
    chunk = FIRST_CHUNK
    for kind, pruner in KINDS.items():
        if kind not in cutoffs:
            continue
        job = Job(kind, cutoffs[kind], now, keep_experiments)
        result.add(kind, 0)
        for dependent in ("steps",) if kind in ("runs", "experiments", "online_scores") else ():
            result.add(dependent, 0)
        cursor: Any = None
        while True:
            began = time.perf_counter()
            found = _find(store, pruner, job, cursor)
            if pause:
                time.sleep((time.perf_counter() - began) * pause)
            if dry_run:
                also = dict(found.also)
                result.add(kind, also.pop(kind, len(found.keys)), sum(found.bytes.values()))
                for name, n in also.items():
                    result.add(name, n)
            else:
                start = 0
                while start < len(found.keys):
                    part = found.keys[start : start + chunk]
                    start += len(part)
                    gone, counts, took, cpu = _write(store, pruner, job, part)
                    result.batch_times.append(took)
                    result.batch_cpu.append(cpu)
                    size = sum(found.bytes.get(k, 0) for k in gone)
                    result.add(kind, counts.pop(kind, len(gone)), size)
                    for name, n in counts.items():
                        result.add(name, n)
                    chunk = _next_chunk(chunk, len(part), took)
                    if pause:
                        rested = time.perf_counter()
                        _checkpoint(store)
                        time.sleep(max(0.0, took * pause - (time.perf_counter() - rested)))
            if progress is not None:
                progress(kind, result[kind], result.bytes.get(kind, 0))
            if found.cursor is None:
                break
            cursor = found.cursor
    return result


def _checkpoint(store: SQLStore) -> None:
    """Move the WAL pages this batch wrote into the SQLite file now, in the pruner's time,
    so that no worker's commit pays for the prune's checkpoint (PASSIVE: waits for no one)."""
    if store.dialect.name == "sqlite":
        store.reading(lambda tx: tx.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())


def _find(store: SQLStore, pruner: Pruner, job: Job, cursor: Any) -> Found:
    return store.reading(lambda tx: pruner.find(tx, job, cursor))


def _write(
    store: SQLStore, pruner: Pruner, job: Job, keys: Sequence[Any]
) -> tuple[list[Any], dict[str, int], float, float]:
    """One batch in one write transaction; how long it held the write lock: from its first
    statement (the transaction has the lock by then) to the end of the commit, and the CPU
    time this thread spent meanwhile (less when it was preempted: a loaded machine)."""
    start = [0.0, 0.0]

    def op(tx: Tx) -> tuple[list[Any], dict[str, int]]:
        start[:] = time.perf_counter(), time.thread_time()
        return pruner.delete(tx, job, keys)

    gone, counts = store.write(op)
    return gone, counts, time.perf_counter() - start[0], time.thread_time() - start[1]


def _next_chunk(chunk: int, used: int, took: float) -> int:
    """The next chunk's size: aim at ``TARGET_S`` per write, at most doubling each time."""
    if used < chunk and took < TARGET_S:
        return chunk  # a short chunk says nothing about a full one
    scaled = int(used * TARGET_S / max(took, 1e-4))
    return max(MIN_CHUNK, min(MAX_CHUNK, scaled, chunk * 2))


__all__ = [
    "KEEP_EXPERIMENTS",
    "KINDS",
    "Found",
    "Job",
    "PruneResult",
    "Pruner",
    "delete_runs",
    "prune",
    "set_window_ttl",
    "uuid_time",
]

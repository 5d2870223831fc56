"""Online evaluation: score a share of a function's completed production runs.

``evals.online(th, function=f, scorers=[...], sample=0.1)`` watches the runs of ``f`` in the
background. Each completed run is decided once, by a hash of its id (so every process, and
every restart, makes the same decision); a sampled run is scored by a durable run of
``tether.eval.online.<f>`` whose id derives from the evaluated run's, so it is created once
however many processes watch. Its output holds the scores (read them back with
``evals.online_scores``), and each score is emitted as an OpenTelemetry
``gen_ai.evaluation.result`` event under the evaluated run's span where its trace is known.

Runs created before ``online()`` starts are not scored unless ``since=`` reaches back to
them (decisions are idempotent, so overlapping a previous watch costs only the scan).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tether.durable.context import Context
from tether.durations import Duration, seconds
from tether.errors import ConfigurationError, StepFailed
from tether.evals.dataset import Case, short_hash
from tether.evals.runner import ONE_ATTEMPT, close_private, private_harness
from tether.evals.scores import Score, Scorer, error_text, resolve_scorers
from tether.evals.telemetry import emit_scores
from tether.records import TERMINAL_STATUSES
from tether.store.queries import RunQuery

if TYPE_CHECKING:
    from tether.harness import Harness
    from tether.store import Store

ONLINE_PREFIX = "tether.eval.online."
ACTIVE = ("queued", "running", "sleeping", "waiting")
log = logging.getLogger("tether.evals")


def online_function_id(function_id: str) -> str:
    return ONLINE_PREFIX + function_id


def sampled(name: str, run_id: str, sample: float) -> bool:
    """The sampling decision for one run: the same for every process, every time."""
    digest = hashlib.sha256(f"{name}\0{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < sample


def score_run_id(name: str, run_id: str) -> str:
    return f"eval-online-{short_hash(name + chr(0) + run_id, 24)}"


class Online:
    """A background watch scoring ``function``'s completed runs; ``stop()`` ends it
    (``with evals.online(...):`` too). ``flush()`` scores what completed so far and waits."""

    def __init__(
        self,
        th: Harness,
        function: Any,
        scorers: Sequence[Any],
        sample: float,
        name: str | None,
        poll: float,
        since: Duration | datetime | None,
        concurrency: int,
    ) -> None:
        from tether.evals import builtin_scorers

        fdef = th._registry.resolve(function)
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 <= sample <= 1:
            raise ConfigurationError(f"sample must be a share between 0 and 1, got {sample!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        self.poll = seconds(poll, "poll")
        self.scorers: list[Scorer] = resolve_scorers(scorers, builtin_scorers())
        self.th = th
        self.function_id = fdef.id
        self.name = name or fdef.id
        self.sample = float(sample)
        self.concurrency = concurrency
        now = th.clock.now()
        if since is None:
            self.horizon = now
        elif isinstance(since, datetime):
            self.horizon = since.timestamp()
        else:
            self.horizon = now - seconds(since, "since")
        self.created = 0  # score runs this watch created
        self.seen = 0  # completed runs decided
        self._newest: str | None = None
        self._pending: set[str] = set()
        self._driving: set[asyncio.Future[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self.inner = private_harness(th)
        self._register()
        self._future = asyncio.run_coroutine_threadsafe(self._loop(), self.inner.engine.loop)

    # -- the scoring run ----------------------------------------------------------------------
    def _register(self) -> None:
        watch = self
        inner = self.inner
        store = self.th.store

        async def score(ctx: Context) -> dict[str, Any]:
            d = ctx.event.data
            run = store.get_run(d["run_id"])
            if run is None:
                return {**d, "scores": {}, "error": "the evaluated run no longer exists"}
            case = Case(run.input, None, {"function": run.function_id}, run.id)
            scores: dict[str, dict[str, Any]] = {}
            for scorer in watch.scorers:
                try:
                    result = await scorer.run(ctx, case, run.output)
                except StepFailed as exc:
                    result = Score.failed_scoring(error_text(exc))
                scores[scorer.name] = result.to_dict()
            emit_scores(inner, ctx.run_id, run.id, watch.name, scores)
            return {**d, "scores": scores}

        inner.function(id=online_function_id(self.function_id), retries=ONE_ATTEMPT)(score)

    # -- watching -------------------------------------------------------------------------------
    async def _loop(self) -> None:
        self._wake = asyncio.Event()
        try:
            await self._resume_unfinished()
            while not self._stopping:
                try:
                    self.scan()
                except Exception as exc:  # a locked or failing store costs one round
                    log.warning("online scoring of %s: scan failed: %s", self.function_id, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                self._wake.clear()
        finally:
            if self._driving:
                await asyncio.wait(set(self._driving), timeout=30)

    async def _resume_unfinished(self) -> None:
        """Score runs this watch's name left unfinished (a crash) are driven to their end."""
        fid = online_function_id(self.function_id)
        for status in ACTIVE:
            for run in self.th.store.list_runs(fid, status, 500, None):
                if (run.input or {}).get("online") == self.name:
                    self._drive(run.id, run.input or {})

    def scan(self) -> int:
        """Decide the runs that completed since the last scan; return how many were sampled."""
        store = self.th.store
        chosen = 0
        first: str | None = None
        cursor: str | None = None
        done = False
        while not done:
            query = RunQuery(function_id=self.function_id, since=self.horizon, limit=200)
            query.before = cursor
            page = store.query_runs(query)
            if not page:
                break
            for run in page:
                if run.id == self._newest:
                    done = True
                    break
                first = first or run.id
                if run.status.value in TERMINAL_STATUSES:
                    chosen += self._decide(run.id, run.status.value)
                else:
                    self._pending.add(run.id)
            cursor = page[-1].id
        if first is not None:
            self._newest = first
        for rid in list(self._pending):
            state = store.run_status(rid)
            if state is None or state[0] in TERMINAL_STATUSES:
                self._pending.discard(rid)
                if state is not None:
                    chosen += self._decide(rid, state[0])
        return chosen

    def _decide(self, run_id: str, status: str) -> int:
        if status != "completed":
            return 0
        self.seen += 1
        if not sampled(self.name, run_id, self.sample):
            return 0
        self._drive(score_run_id(self.name, run_id), None, run_id)
        return 1

    def _drive(self, sid: str, data: dict[str, Any] | None, run_id: str | None = None) -> None:
        fut = asyncio.ensure_future(self._score(sid, data, run_id))
        self._driving.add(fut)
        fut.add_done_callback(self._driving.discard)

    async def _score(self, sid: str, data: dict[str, Any] | None, run_id: str | None) -> None:
        async with self._slots:
            inner = self.inner
            try:
                if inner.store.run_status(sid) is None:
                    payload = data or {
                        "online": self.name,
                        "function": self.function_id,
                        "run_id": run_id,
                    }
                    inner.enqueue(online_function_id(self.function_id), payload, run_id=sid)
                    self.created += 1
                await inner.engine.adrive(sid, None, None)
            except Exception as exc:
                log.warning("online scoring run %s failed to run: %s", sid, exc)

    # -- control --------------------------------------------------------------------------------
    def flush(self, timeout: float = 60.0) -> int:
        """Scan now and wait until every sampled run so far is scored; return how many
        runs were sampled by this scan."""

        async def scan_and_wait() -> int:
            chosen = self.scan()
            while self._driving:
                await asyncio.wait(set(self._driving))
            return chosen

        future = asyncio.run_coroutine_threadsafe(scan_and_wait(), self.inner.engine.loop)
        return future.result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching; scoring runs in flight finish first (up to ``timeout``)."""
        if self._stopping:
            return
        self._stopping = True
        loop = self.inner.engine.loop
        if self._wake is not None:
            loop.call_soon_threadsafe(self._wake.set)
        with contextlib.suppress(Exception):
            self._future.result(timeout)
        close_private(self.inner)

    def __enter__(self) -> Online:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def online(
    th: Harness,
    *,
    function: Any,
    scorers: Sequence[Any],
    sample: float = 0.1,
    name: str | None = None,
    poll: float = 1.0,
    since: Duration | datetime | None = None,
    concurrency: int = 4,
) -> Online:
    """Score a share ``sample`` (0..1) of ``function``'s completed runs in the background,
    as tether runs; see the module docs. Returns the running watch (``stop()`` it)."""
    return Online(th, function, scorers, sample, name, poll, since, concurrency)


@dataclass(frozen=True, slots=True)
class OnlineScore:
    """The scores of one production run."""

    run_id: str
    scored_at: datetime | None
    scores: dict[str, Score]
    name: str
    score_run_id: str


def online_scores(
    store: Store,
    function: str,
    *,
    name: str | None = None,
    since: float | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[OnlineScore]:
    """Scored runs of ``function``, newest first (``before``: the ``score_run_id`` of the
    last one of the previous page; ``since``: epoch seconds)."""
    query = RunQuery(
        function_id=online_function_id(function),
        status="completed",
        since=since,
        limit=limit,
        before=before,
    )
    out = []
    for run in store.query_runs(query):
        d = run.output if isinstance(run.output, dict) else {}
        if name is not None and d.get("online") != name:
            continue
        scores = {k: Score.from_dict(v) for k, v in (d.get("scores") or {}).items()}
        out.append(
            OnlineScore(d.get("run_id", ""), run.ended_at, scores, d.get("online", ""), run.id)
        )
    return out


__all__ = ["Online", "OnlineScore", "online", "online_scores", "sampled", "score_run_id"]

"""``evals.run`` / ``evals.arun``: an experiment as durable runs.

Each (case, repeat) is a run of ``tether.eval.case`` with an id derived from (experiment,
case id, repeat). It runs the task (``task.py``), then each scorer in a durable step of its
own (the judge as a durable LLM step), and returns the case's record as its output. Run the
same experiment again after a crash and every finished case returns its recorded output at
once; a case that was in flight continues from its last checkpoint; nothing finished, model
calls included, executes again.

The eval functions are registered on a private ``Harness`` sharing the application's store,
not on the application's harness: its code version stays the same, and its workers never
claim an experiment's runs (only the process running the experiment drives them, by id).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.durable.context import Context
from tether.durable.retry import Retry
from tether.errors import ConfigurationError, StepFailed
from tether.evals.dataset import Case, Dataset, short_hash
from tether.evals.records import (
    CASE_FN,
    CASES_STEP,
    EXPERIMENT_FN,
    FINISHED_EVENT,
    ExperimentInfo,
    case_run_id,
    experiment_run_id,
    find_experiment,
)
from tether.evals.results import EvalResult, summarize
from tether.evals.scores import Score, Scorer, error_text
from tether.evals.task import Task
from tether.evals.telemetry import emit_scores
from tether.records import TERMINAL_STATUSES, Event

if TYPE_CHECKING:
    from tether.harness import Harness

ONE_ATTEMPT = Retry(max_attempts=1)


def private_harness(th: Harness) -> Harness:
    """A harness on ``th``'s store (and clock, limits and tracing) for tether's own eval
    functions. Close it with ``close_private``."""
    from tether.harness import Harness

    if not isinstance(th, Harness):
        raise ConfigurationError(f"the first argument must be a tether.Harness, got {th!r}")
    inner = Harness(
        th.store,
        version=th.version,
        clock=th.clock,
        lease_ttl=th.lease_ttl,
        heartbeat=th.heartbeat,
        max_output_bytes=th.max_output_bytes,
    )
    shared = th.engine.observer
    own = inner.engine.observer
    if own is not None and own is not shared:
        own.close()
    inner.engine.observer = shared
    return inner


def close_private(inner: Harness) -> None:
    engine = inner._engine
    inner.close()
    if engine is not None:  # the engine registered a listener on the shared store
        with contextlib.suppress(ValueError):
            inner.store._listeners().remove(engine._on_change)


class Experiment:
    """One execution of an evaluation, validated before anything is stored."""

    def __init__(
        self,
        th: Harness,
        name: str,
        *,
        task: Any,
        dataset: Dataset | Sequence[Case | dict[str, Any]] | str | os.PathLike[str],
        scorers: Sequence[Any],
        repeat: int,
        concurrency: int,
        experiment: str | None,
        fresh: bool,
        timeout: float | None,
        progress: bool | None,
    ) -> None:
        from tether.evals import builtin_scorers
        from tether.evals.scores import resolve_scorers
        from tether.harness import Harness

        if not isinstance(th, Harness):
            raise ConfigurationError(f"evals.run needs a tether.Harness first, got {th!r}")
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"the evaluation needs a name (a string), got {name!r}")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ConfigurationError(f"repeat must be an integer >= 1, got {repeat!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if experiment is not None and (not isinstance(experiment, str) or not experiment):
            raise ConfigurationError(f"experiment= must be a non-empty string, got {experiment!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ConfigurationError(f"timeout= must be a number of seconds > 0, got {timeout!r}")
        self.th = th
        self.name = name
        if isinstance(dataset, str | os.PathLike):
            dataset = Dataset.from_file(os.fspath(dataset))
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        self.scorers: list[Scorer] = resolve_scorers(scorers, builtin_scorers())
        self.task = Task(th, task, timeout)
        self.repeat = repeat
        self.concurrency = concurrency
        self.progress = _want_progress(progress)
        parts = [th.version, self.task.describe(), f"repeat={repeat}"]
        parts += [s.describe() for s in self.scorers]
        self.code_version = short_hash("\n".join(parts))
        base = experiment or f"{name}:{self.code_version}:{self.dataset.hash}"
        self.experiment = self._pick_name(base, fresh)
        self.definition = {
            "experiment": self.experiment,
            "evaluation": name,
            "code_version": self.code_version,
            "dataset_hash": self.dataset.hash,
            "scorers": [s.name for s in self.scorers],
            "repeat": repeat,
            "cases": len(self.dataset),
            "task": self.task.name,
        }
        existing = find_experiment(th.store, self.experiment)
        if existing is not None:
            self._check_same(existing)

    def _pick_name(self, base: str, fresh: bool) -> str:
        if not fresh or find_experiment(self.th.store, base) is None:
            return base
        n = 2
        while find_experiment(self.th.store, f"{base}#{n}") is not None:
            n += 1
        return f"{base}#{n}"

    def _check_same(self, info: ExperimentInfo) -> None:
        mine = self.definition
        theirs = {
            "evaluation": info.evaluation,
            "code_version": info.code_version,
            "dataset_hash": info.dataset_hash,
            "scorers": info.scorers,
            "repeat": info.repeat,
        }
        for key, value in theirs.items():
            if mine[key] != value:
                raise ConfigurationError(
                    f"experiment {self.experiment!r} already exists with {key} {value!r} "
                    f"(this run has {mine[key]!r}): continue it with the same evaluation, or "
                    "start a new one with fresh=True or another experiment= name"
                )

    # -- the durable functions (registered on the private harness) ----------------------------
    def register(self, inner: Harness) -> None:
        plan = self
        scorers = self.scorers
        task = self.task
        plain = task.plain_step() if task.fn is not None else None

        async def experiment(ctx: Context) -> dict[str, Any]:
            await ctx.step.run(CASES_STEP, plan.case_ids)
            done = await ctx.step.wait_for_event(
                "finished", event=FINISHED_EVENT, match="data.experiment"
            )
            summary = done.data.get("summary") if done is not None else None
            return {**ctx.event.data, "summary": summary}

        async def case(ctx: Context) -> dict[str, Any]:
            data = ctx.event.data
            item = Case.from_dict(data["case"])
            try:
                if plain is None:
                    rec = await ctx.step.run("task", task.call_function, ctx.run_id, item)
                else:
                    steps = ctx.step.options(timeout=task.timeout) if task.timeout else ctx.step
                    rec = await steps.run("task", plain, ctx.run_id, item.input)
            except StepFailed as exc:
                rec = {
                    "status": "error",
                    "output": None,
                    "error": {"type": exc.error_type, "message": exc.error_message},
                    "run_id": ctx.run_id,
                    "latency_s": None,
                    "usage": {},
                    "cost_usd": None,
                }
            scores: dict[str, dict[str, Any]] = {}
            if rec["status"] == "ok":
                for scorer in scorers:
                    try:
                        score = await scorer.run(ctx, item, rec["output"])
                    except StepFailed as exc:
                        score = Score.failed_scoring(error_text(exc))
                    scores[scorer.name] = score.to_dict()
                emit_scores(inner, ctx.run_id, rec["run_id"], plan.name, scores)
            return {"case_id": item.id, "repeat": data["repeat"], **rec, "scores": scores}

        inner.function(id=EXPERIMENT_FN, retries=ONE_ATTEMPT)(experiment)
        inner.function(id=CASE_FN, retries=ONE_ATTEMPT)(case)

    def case_ids(self) -> list[str]:
        return self.dataset.ids

    # -- driving --------------------------------------------------------------------------------
    async def execute(self, inner: Harness) -> EvalResult:
        """Drive the experiment's runs on ``inner``'s engine loop."""
        store = inner.store
        rid = experiment_run_id(self.experiment)
        if store.run_status(rid) is None:
            inner.enqueue(EXPERIMENT_FN, self.definition, run_id=rid)
        await _drive_until(inner, rid, ("waiting", "completed"))
        totals = None
        state = store.run_status(rid)
        if state is None or state[0] != "completed":
            bar = _Progress(self.progress, f"{self.name} ({self.experiment})", self._total())
            try:
                await self._cases(inner, bar)
            finally:
                bar.close()
            totals = self._totals()
            event = Event(
                FINISHED_EVENT,
                {"experiment": self.experiment, "summary": totals},
                id=f"{rid}:finished",
            )
            inner.send(event)
            await inner.engine.adrive(rid, None, None)
        return self.result(totals)

    def _total(self) -> int:
        return len(self.dataset) * self.repeat

    def _totals(self) -> dict[str, Any]:
        names = [s.name for s in self.scorers]
        return summarize(self.th.store, self.experiment, self.dataset.ids, self.repeat, names)

    def result(self, totals: dict[str, Any] | None = None) -> EvalResult:
        info = find_experiment(self.th.store, self.experiment)
        assert info is not None
        if totals is None:
            totals = info.summary or self._totals()
        return EvalResult(self.th.store, info, self.dataset.ids, totals, self.dataset)

    async def _cases(self, inner: Harness, bar: _Progress) -> None:
        pending: set[asyncio.Future[None]] = set()
        try:
            for r in range(self.repeat):
                for item in self.dataset:
                    while len(pending) >= self.concurrency:
                        done, pending = await asyncio.wait(
                            pending, return_when=asyncio.FIRST_COMPLETED
                        )
                        for fut in done:
                            fut.result()
                            bar.advance()
                    pending.add(asyncio.ensure_future(self._one(inner, item, r)))
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    fut.result()
                    bar.advance()
        finally:
            for fut in pending:
                fut.cancel()

    async def _one(self, inner: Harness, item: Case, repeat: int) -> None:
        rid = case_run_id(self.experiment, item.id, repeat)
        state = inner.store.run_status(rid)
        if state is not None and state[0] in TERMINAL_STATUSES:
            return  # recorded: nothing runs again
        claim = None
        if state is None:  # created and claimed in one write
            data = {"experiment": self.experiment, "case": item.to_dict(), "repeat": repeat}
            rid, claim = inner._create(CASE_FN, data, rid, claim=True)
        await inner.engine.adrive(rid, claim, None)


async def _drive_until(inner: Harness, rid: str, statuses: tuple[str, ...]) -> None:
    """Execute ``rid`` whenever it is due until its status is one of ``statuses`` (a run
    left by a killed process is taken over once its lease expires)."""
    while True:
        state = inner.store.run_status(rid)
        if state is not None and state[0] in statuses:
            return
        await inner.engine.adrive(rid, None, 0.25)


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    if os.environ.get("TETHER_PROGRESS") == "0":
        return False
    return sys.stderr.isatty()


class _Progress:
    """A rich progress bar on stderr (only on a terminal)."""

    def __init__(self, enabled: bool, label: str, total: int) -> None:
        self._bar: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _start(th: Harness, name: str, options: dict[str, Any]) -> tuple[Harness, Any]:
    """Validate (nothing is stored before this passes), then set up the private harness."""
    plan = Experiment(th, name, **options)
    inner = private_harness(th)
    plan.register(inner)
    return inner, plan.execute(inner)


def run(
    th: Harness,
    name: str,
    *,
    task: Any,
    dataset: Dataset | Sequence[Case | dict[str, Any]] | str | os.PathLike[str],
    scorers: Sequence[Any],
    repeat: int = 1,
    concurrency: int = 4,
    experiment: str | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    progress: bool | None = None,
) -> EvalResult:
    """Run (or continue, or return) an experiment: every case of ``dataset`` through
    ``task``, ``repeat`` times, scored by each of ``scorers``, ``concurrency`` at a time.

    ``experiment`` defaults to ``"{name}:{code version}:{dataset hash}"``: the same code on
    the same data continues (or returns) the same experiment; ``fresh=True`` starts a new
    one. ``timeout`` bounds each task run. Blocks, also inside a running event loop."""
    options = dict(
        task=task,
        dataset=dataset,
        scorers=scorers,
        repeat=repeat,
        concurrency=concurrency,
        experiment=experiment,
        fresh=fresh,
        timeout=timeout,
        progress=progress,
    )
    inner, coro = _start(th, name, options)
    future = asyncio.run_coroutine_threadsafe(coro, inner.engine.loop)
    try:
        result: EvalResult = future.result()
    except BaseException:
        future.cancel()
        raise
    finally:
        close_private(inner)
    return result


async def arun(
    th: Harness,
    name: str,
    *,
    task: Any,
    dataset: Dataset | Sequence[Case | dict[str, Any]] | str | os.PathLike[str],
    scorers: Sequence[Any],
    repeat: int = 1,
    concurrency: int = 4,
    experiment: str | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    progress: bool | None = None,
) -> EvalResult:
    """Async version of ``run``: the experiment's runs execute on tether's engine loop."""
    options = dict(
        task=task,
        dataset=dataset,
        scorers=scorers,
        repeat=repeat,
        concurrency=concurrency,
        experiment=experiment,
        fresh=fresh,
        timeout=timeout,
        progress=progress,
    )
    inner, coro = await asyncio.to_thread(_start, th, name, options)
    future = asyncio.run_coroutine_threadsafe(coro, inner.engine.loop)
    try:
        return await asyncio.wrap_future(future)
    finally:
        await asyncio.to_thread(close_private, inner)


__all__ = ["Experiment", "arun", "close_private", "private_harness", "run"]

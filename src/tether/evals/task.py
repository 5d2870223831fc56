"""The system under test: a registered durable function or any callable.

A registered function runs as its own durable run (``<case run>-task``) through
``Harness.arun``, so a failing case opens straight into the task's run and trace, its
steps and model calls are checkpointed, and a resumed experiment continues it rather than
starting it again. A plain callable runs as the ``task`` step of the case's run and gets
the case's input as is.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tether.codec import loads
from tether.durable.function import DurableFunction
from tether.errors import ConfigurationError, FunctionNotFound, RunCancelled, RunFailed, RunTimeout
from tether.evals.dataset import Case
from tether.evals.records import task_run_id
from tether.evals.scores import code_hash, is_async

if TYPE_CHECKING:
    from tether.harness import Harness


def is_llm_output(value: Any) -> bool:
    """A checkpointed ``ctx.step.llm`` response (or an ``LLMResponse`` dumped to JSON)."""
    return isinstance(value, dict) and {"model", "provider", "usage", "attempts"} <= set(value)


def add_usage(total: dict[str, int], usage: dict[str, Any]) -> None:
    for key, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


class Task:
    """``call(case_run_id, case)`` returns the task's part of a case record."""

    def __init__(self, th: Harness, task: Any, timeout: float | None) -> None:
        self.th = th
        self.timeout = timeout
        self.function: DurableFunction | None = None
        self.fn: Callable[..., Any] | None = None
        if isinstance(task, DurableFunction | str):
            self.function = th._registry.resolve(task)
        elif callable(task) and not isinstance(task, type):
            try:
                self.function = th._registry.resolve(task)
            except FunctionNotFound:
                self.fn = task
                _check_one_argument(task)
        else:
            raise ConfigurationError(
                f"task= must be a function registered with @th.function, its id, or a "
                f"callable taking the case's input; got {task!r}"
            )

    @property
    def name(self) -> str:
        if self.function is not None:
            return self.function.id
        return getattr(self.fn, "__qualname__", None) or type(self.fn).__name__

    @property
    def is_async(self) -> bool:
        return is_async(self.fn)

    def describe(self) -> str:
        """What identifies the task's code (part of the experiment's code version)."""
        if self.function is not None:
            return f"function:{self.function.id}:{self.function.source_hash}"
        assert self.fn is not None
        return f"callable:{self.name}:{code_hash(self.fn)}"

    # -- a registered function: its own durable run -----------------------------------------
    async def call_function(self, case_run: str, case: Case) -> dict[str, Any]:
        assert self.function is not None
        rid = task_run_id(case_run)
        record: dict[str, Any] = {"status": "ok", "output": None, "error": None, "run_id": rid}
        fresh = self.th.store.run_status(rid) is None
        started = time.perf_counter()
        try:
            record["output"] = await self.th.arun(
                self.function, case.run_data(), run_id=rid, timeout=self.timeout
            )
        except RunFailed as exc:
            record["status"] = "error"
            record["error"] = {"type": exc.error.get("type"), "message": exc.error.get("message")}
        except RunCancelled as exc:
            record["status"] = "error"
            record["error"] = {"type": "RunCancelled", "message": str(exc)}
        except RunTimeout as exc:
            record["status"] = "error"
            record["error"] = {"type": "RunTimeout", "message": str(exc)}
        if fresh:  # started here: its latency is this wait; its LLM usage is in its steps
            record["latency_s"] = time.perf_counter() - started
            record.update(self._usage(rid))
        else:  # started before a crash: read its timeline
            record.update(await asyncio.to_thread(self._measure, rid))
        return record

    def _usage(self, rid: str) -> dict[str, Any]:
        """The tokens and cost of the task run's LLM steps."""
        usage: dict[str, int] = {}
        cost: float | None = None
        for row in self.th.store.load_steps(rid).values():
            if row.output is None or '"attempts"' not in row.output:
                continue
            value = loads(row.output)
            if is_llm_output(value):
                add_usage(usage, value.get("usage") or {})
                if value.get("cost_usd") is not None:
                    cost = (cost or 0.0) + float(value["cost_usd"])
        return {"usage": usage, "cost_usd": cost}

    def _measure(self, rid: str) -> dict[str, Any]:
        """Latency of the task's run from its timeline, with its usage."""
        run = self.th.store.get_run(rid)
        latency = None
        if run is not None and run.ended_at is not None:
            start = run.started_at or run.created_at
            latency = max(0.0, (run.ended_at - start).total_seconds())
        return {"latency_s": latency, **self._usage(rid)}

    # -- a plain callable: the ``task`` step of the case's run --------------------------------
    def plain_step(self) -> Callable[..., Any]:
        """The step callable (sync or async like the task) returning the task's record."""
        fn = self.fn
        assert fn is not None

        def record(case_run: str, output: Any, started: float) -> dict[str, Any]:
            output = jsonable(output)
            usage: dict[str, int] = {}
            cost = None
            if is_llm_output(output):
                add_usage(usage, output.get("usage") or {})
                cost = output.get("cost_usd")
            return {
                "status": "ok",
                "output": output,
                "error": None,
                "run_id": case_run,
                "latency_s": time.perf_counter() - started,
                "usage": usage,
                "cost_usd": cost,
            }

        if self.is_async:

            async def acall(case_run: str, value: Any) -> dict[str, Any]:
                started = time.perf_counter()
                return record(case_run, await fn(value), started)

            return acall

        def call(case_run: str, value: Any) -> dict[str, Any]:
            started = time.perf_counter()
            return record(case_run, fn(value), started)

        return call


def _check_one_argument(fn: Callable[..., Any]) -> None:
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        name = getattr(fn, "__name__", repr(fn))
        raise ConfigurationError(
            f"task {name!r} must take one argument, the case's input: def {name}(input): ..."
        ) from None
    except ValueError:
        return


__all__ = ["Task", "add_usage", "is_llm_output", "jsonable"]

"""check-replay: run recorded histories against the current code, without side effects.

Each recorded run's body executes again with every step answered from its history; the
first step the history does not have ends the check. A run whose steps come in another
order (or of another kind) than recorded is reported with an expected-vs-actual diff.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tether.durable.context import Context, SyncContext
from tether.durable.execution import CheckStop, RunExecution
from tether.durable.signals import Cancel, LeaseLost, Suspend
from tether.errors import NonDeterminismError
from tether.store.base import Claim

if TYPE_CHECKING:
    from tether.durable.engine import Engine


def check_runs(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    store = engine.store
    functions = engine.registry.functions
    results = []
    for run_id in store.runs_for_check(list(functions), limit):
        run = store.get_run(run_id)
        if run is None:
            continue
        function = functions[run.function_id]
        claim = Claim(
            run.id,
            run.function_id,
            -1,
            run.event_name or "",
            _json(run.input),
            None,
            run.created_at.timestamp(),
            run.version,
            None,
            False,
            run.created_at.timestamp(),
            run.created_at.timestamp(),
        )
        ex = RunExecution(engine, claim, function, store.load_steps(run_id), check_only=True)
        ex.deadline = None
        error: BaseException | None = None
        try:
            if function.is_async:
                future = asyncio.run_coroutine_threadsafe(function.fn(Context(ex)), engine.loop)
                future.result(timeout=60)
            else:
                function.fn(SyncContext(ex))
        except (CheckStop, Suspend, Cancel, LeaseLost):
            pass
        except NonDeterminismError as exc:
            error = exc
        except Exception as exc:
            error = ex.diverged or (exc if ex.replaying else None)
        if error is None and ex.diverged is not None:
            error = ex.diverged
        results.append(
            {
                "run_id": run.id,
                "function_id": run.function_id,
                "version": run.version,
                "ok": error is None,
                "diff": getattr(error, "diff", None),
                "error": None if error is None else str(error),
            }
        )
    return results


def _json(value: Any) -> str:
    from tether.codec import dumps

    return dumps(value or {})

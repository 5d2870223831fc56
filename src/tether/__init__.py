"""tether: a durable harness for AI applications.

import tether
th = tether.Harness()

@th.function(trigger=tether.on_event("ticket.created"))
async def triage(ctx: tether.Context) -> dict:
    summary = await ctx.step.run("summarize", summarize, ctx.event.data)
    return {"summary": summary}
"""

from tether.clock import Clock, VirtualClock
from tether.durable.context import Context, SyncContext
from tether.durable.function import DurableFunction, on_event
from tether.durable.handle import RunHandle
from tether.durable.retry import Retry
from tether.durable.worker import Worker
from tether.errors import (
    ConfigurationError,
    FunctionNotFound,
    InvalidEventError,
    NonDeterminismError,
    NonRetriableError,
    RetryAfterError,
    RunCancelled,
    RunFailed,
    RunTimeout,
    SchemaVersionError,
    StepFailed,
    StepOutputError,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreLocked,
    TetherError,
)
from tether.harness import Harness
from tether.records import Attempt, Event, Run, RunStatus, Step

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "Clock",
    "ConfigurationError",
    "Context",
    "DurableFunction",
    "Event",
    "FunctionNotFound",
    "Harness",
    "InvalidEventError",
    "NonDeterminismError",
    "NonRetriableError",
    "Retry",
    "RetryAfterError",
    "Run",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunStatus",
    "RunTimeout",
    "SchemaVersionError",
    "Step",
    "StepFailed",
    "StepOutputError",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "SyncContext",
    "TetherError",
    "VirtualClock",
    "Worker",
    "__version__",
    "on_event",
]

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
    ContentFiltered,
    ContextLengthExceeded,
    CostLimitExceeded,
    EncryptionError,
    EncryptionKeyError,
    FunctionNotFound,
    InvalidEventError,
    InvalidMemory,
    InvalidOutput,
    InvalidPreference,
    LLMCallFailed,
    LLMDeadlineExceeded,
    LLMError,
    MemoryDisabled,
    MemoryIndexMismatch,
    MemoryNotFound,
    MissingAPIKey,
    MissingExtra,
    NonDeterminismError,
    NonRetriableError,
    ProviderError,
    RetryAfterError,
    RunCancelled,
    RunFailed,
    RunNotFound,
    RunTimeout,
    SchemaVersionError,
    StepFailed,
    StepOutputError,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreNotFound,
    StreamInterrupted,
    SubjectKeyDestroyed,
    SubjectNotFound,
    TetherError,
    UnknownProvider,
)
from tether.flow.controls import (
    Batch,
    CancelOn,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    cancel_on,
)
from tether.flow.cron import on_cron
from tether.harness import Harness
from tether.memory import Memory, MemoryHit, MemoryItem
from tether.records import Attempt, Event, Run, RunStatus, Step
from tether.subjects import Subject

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "Batch",
    "CancelOn",
    "Clock",
    "Concurrency",
    "ConfigurationError",
    "ContentFiltered",
    "Context",
    "ContextLengthExceeded",
    "CostLimitExceeded",
    "Debounce",
    "DurableFunction",
    "EncryptionError",
    "EncryptionKeyError",
    "Event",
    "FunctionNotFound",
    "Harness",
    "InvalidEventError",
    "InvalidMemory",
    "InvalidOutput",
    "InvalidPreference",
    "LLMCallFailed",
    "LLMDeadlineExceeded",
    "LLMError",
    "Memory",
    "MemoryDisabled",
    "MemoryHit",
    "MemoryIndexMismatch",
    "MemoryItem",
    "MemoryNotFound",
    "MissingAPIKey",
    "MissingExtra",
    "NonDeterminismError",
    "NonRetriableError",
    "Priority",
    "ProviderError",
    "RateLimit",
    "Retry",
    "RetryAfterError",
    "Run",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunNotFound",
    "RunStatus",
    "RunTimeout",
    "SchemaVersionError",
    "Singleton",
    "Step",
    "StepFailed",
    "StepOutputError",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "StoreNotFound",
    "StreamInterrupted",
    "Subject",
    "SubjectKeyDestroyed",
    "SubjectNotFound",
    "SyncContext",
    "TetherError",
    "Throttle",
    "UnknownProvider",
    "VirtualClock",
    "Worker",
    "__version__",
    "cancel_on",
    "on_cron",
    "on_event",
]

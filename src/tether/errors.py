"""The whole error tree of tether.

    TetherError
    ├── ConfigurationError          bad arguments, duplicate function ids, unknown functions
    │   └── FunctionNotFound
    ├── InvalidEventError           an event that is not {name: str, data: JSON object}
    ├── StoreError                  the store cannot be used
    │   ├── StoreNotFound           there is no store at this path or URL (opened to read)
    │   ├── StoreCorrupt            the database file is damaged or not a tether store
    │   ├── StoreLocked             another process holds the database lock for too long
    │   ├── StoreFull               the disk is full: nothing was written
    │   └── SchemaVersionError      the store was written by a newer tether
    ├── NonRetriableError           raise it from a step: no further attempts
    │   └── StepOutputError         a step result that cannot be stored (not JSON, too large)
    ├── RetryAfterError             raise it from a step: retry after the given delay
    ├── StepFailed                  a step failed for good; raised inside the function
    ├── NonDeterminismError         a resumed run's steps diverge from its recorded history
    ├── RunFailed                   a run ended in failure (raised to callers waiting on it)
    ├── RunCancelled                a run was cancelled (raised to callers waiting on it)
    └── RunTimeout                  also a TimeoutError: a run or a wait on it ran out of time

Suspension and cancellation inside a running function are ``BaseException`` subclasses
(see ``tether.durable.signals``) so that ``except Exception`` in user code never swallows them.
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    """Root of every error tether raises."""


class ConfigurationError(TetherError):
    """tether was set up or called in a way that cannot work."""


class FunctionNotFound(ConfigurationError):
    """No function with this id is registered on the harness."""


class InvalidEventError(TetherError):
    """An event does not have the shape ``Event(name: str, data: dict)``."""


class StoreError(TetherError):
    """The store cannot be read or written."""


class StoreNotFound(StoreError):
    """There is no store where one was opened without ``create`` (a reading command)."""


class StoreCorrupt(StoreError):
    """The database file is damaged or is not a tether store."""


class StoreLocked(StoreError):
    """The database stayed locked by another process for longer than the busy timeout."""


class StoreFull(StoreError):
    """The disk or database is full; the write was rolled back and nothing was changed."""


class SchemaVersionError(StoreError):
    """The store's schema is newer than this version of tether understands."""


class NonRetriableError(TetherError):
    """Raise from a step to fail it at once, without further attempts."""


class StepOutputError(NonRetriableError):
    """A step returned a value that cannot be checkpointed (not JSON, or too large)."""


class RetryAfterError(TetherError):
    """Raise from a step to retry it after ``seconds`` instead of the policy's backoff."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry after {seconds}s")
        self.seconds = float(seconds)


class StepFailed(TetherError):
    """A step failed for good: its retries are exhausted or its error must not be retried.

    Raised inside the function at the step call; the function may catch it. The original
    exception is attached as ``__cause__`` on the first execution; on replay only its type
    name and message survive (``error_type``, ``error_message``).
    """

    def __init__(self, step_id: str, error_type: str, error_message: str) -> None:
        super().__init__(f"step {step_id!r} failed: {error_type}: {error_message}")
        self.step_id = step_id
        self.error_type = error_type
        self.error_message = error_message


class NonDeterminismError(TetherError):
    """A resumed run reached a different step sequence than the one it recorded.

    ``diff`` is a list of ``{"position", "expected", "actual"}`` rows, one per position
    where the recorded history (expected) and the current code (actual) disagree.
    """

    def __init__(
        self, run_id: str, function_id: str, diff: list[dict[str, Any]], hint: str
    ) -> None:
        lines = [f"run {run_id} of function {function_id!r} diverged from its recorded steps:"]
        for row in diff:
            lines.append(
                f"  step #{row['position']}: expected {row['expected']!r}, got {row['actual']!r}"
            )
        lines.append(hint)
        super().__init__("\n".join(lines))
        self.run_id = run_id
        self.function_id = function_id
        self.diff = diff


class RunFailed(TetherError):
    """A run ended in failure. ``error`` holds the recorded error (type, message, traceback)."""

    def __init__(self, run_id: str, error: dict[str, Any] | None) -> None:
        error = error or {}
        super().__init__(
            f"run {run_id} failed: {error.get('type', 'Error')}: {error.get('message', '')}"
        )
        self.run_id = run_id
        self.error = error


class RunCancelled(TetherError):
    """The run was cancelled before it completed."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was cancelled")
        self.run_id = run_id


class RunTimeout(TetherError, TimeoutError):
    """A run exceeded its timeout, or a caller's wait for a run ran out of time."""

"""Control flow that user code must not swallow: ``except Exception`` never catches these."""

from __future__ import annotations


class Suspend(BaseException):
    """The run must stop here and resume later (a sleep, a wait, a durable backoff)."""

    def __init__(self, wake_at: float | None, step_id: str, waiting: bool) -> None:
        super().__init__(step_id)
        self.wake_at = wake_at
        self.step_id = step_id
        self.waiting = waiting


class Cancel(BaseException):
    """The run was cancelled: stop at this step boundary."""


class LeaseLost(BaseException):
    """Another worker took this run over; this process must commit nothing more for it."""

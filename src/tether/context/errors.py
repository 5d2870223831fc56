"""Errors raised by ``tether.context``.

    TetherError
    ├── ConfigurationError
    │   ├── ContextBudgetError      the budget cannot hold the system prompt, the pins or the newest turn
    │   ├── UnknownContextWindow    a model whose context window is unknown, and no ``budget=``
    │   └── InvalidContextItem      not a message, a bad role, a tool result for an unknown call id...
    │       └── WriteKeyConflict    a write key reused for a different item
    ├── ArtifactNotFound            ``recall(handle)`` of a handle this window does not hold
    ├── StaleCompaction             a summary planned on a window whose summary has changed since
    ├── CompactionRejected          a summary that is not short enough or drops a protected term
    └── InvalidForProvider          built messages a provider's wire format would refuse (a bug)

Every error names the offending value and the fix. A write that raises appended nothing.
"""

from __future__ import annotations

from tether.errors import ConfigurationError, TetherError


class ContextBudgetError(ConfigurationError):
    """The budget is too small for what every build must contain."""

    def __init__(self, message: str, *, budget: int, needed: int) -> None:
        super().__init__(message)
        self.budget = budget
        self.needed = needed


class UnknownContextWindow(ConfigurationError):
    """A window was opened with a model whose context window is not known, and no budget."""


class InvalidContextItem(ConfigurationError):
    """An item that cannot be written to a window: nothing was appended."""


class WriteKeyConflict(InvalidContextItem):
    """A write key already names a different item (a replay that diverged)."""


class ArtifactNotFound(TetherError, LookupError):
    """``recall(handle)`` got a handle that names nothing in this window."""


class StaleCompaction(TetherError):
    """The summary was planned against an older summary than the window's current one."""


class CompactionRejected(TetherError):
    """A summary failed validation; the old summary and the turns stay as they were.

    ``problems`` lists each reason (too long, a protected term missing, empty).
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("summary rejected, the window is unchanged: " + "; ".join(problems))
        self.problems = problems


class InvalidForProvider(TetherError):
    """Messages that a provider's wire format would refuse with a 400."""

    def __init__(self, family: str, problem: str) -> None:
        super().__init__(f"messages are not valid {family} input: {problem}")
        self.family = family
        self.problem = problem

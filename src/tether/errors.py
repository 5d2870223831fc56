"""The whole error tree of tether.

    TetherError
    ├── ConfigurationError          bad arguments, duplicate function ids, unknown functions
    │   ├── FunctionNotFound
    │   ├── MissingExtra            an LLM provider's SDK is not installed (the pip line to run)
    │   ├── MissingAPIKey           no API key for an LLM provider: raised before any request
    │   └── UnknownProvider         a model string with no known ``provider:`` prefix
    ├── InvalidEventError           an event that is not {name: str, data: JSON object}
    ├── StoreError                  the store cannot be used
    │   ├── StoreNotFound           there is no store at this path or URL (opened to read)
    │   ├── StoreCorrupt            the database file is damaged or not a tether store
    │   ├── StoreLocked             another process holds the database lock for too long
    │   ├── StoreFull               the disk is full: nothing was written
    │   └── SchemaVersionError      the store was written by a newer tether
    ├── Fenced                      (internal) a write dropped: the run's lease moved on
    ├── WouldBlock                  (internal) a write tried on an event loop found the lock taken
    ├── NonRetriableError           raise it from a step: no further attempts
    │   ├── StepOutputError         a step result that cannot be stored (not JSON, too large)
    │   └── LLMCallFailed           a logical LLM call failed for good (``.kind``, ``.attempts``)
    │       ├── ContextLengthExceeded   no model in the chain has a large enough context
    │       ├── ContentFiltered         the provider refused or filtered the reply
    │       ├── InvalidOutput           structured output still invalid after the re-asks
    │       ├── LLMDeadlineExceeded     the call's deadline ran out (also a ``TimeoutError``)
    │       ├── CostLimitExceeded       the call's or the run's ``max_cost_usd`` was reached
    │       └── StreamInterrupted       a stream failed after its first token (``.partial_text``)
    ├── LLMError                    one LLM attempt failed
    │   └── ProviderError           raised by providers with its classification; the call retries
    ├── RetryAfterError             raise it from a step: retry after the given delay
    ├── StepFailed                  a step failed for good; raised inside the function
    ├── NonDeterminismError         a resumed run's steps diverge from its recorded history
    ├── RunNotFound                 no run with this id in the store
    ├── RunFailed                   a run ended in failure (raised to callers waiting on it)
    ├── RunCancelled                a run was cancelled (raised to callers waiting on it)
    ├── RunTimeout                  also a TimeoutError: a run or a wait on it ran out of time
    ├── MemoryNotFound              no memory item with this id for this subject
    ├── MemoryDisabled              the subject's preferences turn long-term memory off
    ├── InvalidMemory               also a ValueError: empty or oversized text, bad tags or k
    ├── MemoryIndexMismatch         the store's vectors were made by another embedder (reindex)
    ├── SubjectNotFound             nothing is kept about this subject (CLI, API lookups)
    ├── InvalidPreference           a preference that is not a JSON value: nothing written
    └── EncryptionError             a payload cannot be decrypted (damaged, or stored in clear)
        ├── EncryptionKeyError      a wrong, missing or malformed encryption key (names the fix)
        └── SubjectKeyDestroyed     the subject was forgotten: its data key is gone

Control flow inside a running function derives from ``BaseException``, so ``except
Exception`` in user code never swallows it (``tether.durable.signals`` and
``tether.durable.execution``):

    BaseException
    ├── Suspend                     the run stops here and resumes later (sleep, wait, backoff)
    ├── Cancel                      the run was cancelled: stop at this step boundary
    ├── LeaseLost                   another worker took the run over: commit nothing more
    ├── DeadlineExceeded            the function's timeout passed (the run fails: RunTimeout)
    └── CheckStop                   check-replay reached the end of the recorded history

``LLMCallFailed`` is a ``NonRetriableError``: an LLM call has its own retry policy (the
classifier and the deadline, ``tether.llm``), so a durable step does not retry it on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.llm.classify import Classification, ErrorKind
    from tether.llm.types import AttemptRecord, ToolCall


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


class Fenced(TetherError):
    """A fenced write was dropped: the run's lease moved to another worker. Internal: the
    engine turns it into ``LeaseLost`` and stops the run in this process."""


class WouldBlock(TetherError):
    """A write attempted without waiting (on an event loop) found the store's lock taken.
    Internal: the engine hands the call to an I/O thread, where it waits as usual."""


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


class RunNotFound(TetherError):
    """No run with this id exists in the store."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id!r} does not exist in this store: check the id (`tether runs` lists "
            "them) and the store URL (TETHER_STORE)"
        )
        self.run_id = run_id


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


# ---------------------------------------------------------------- LLM calls (tether.llm)


class LLMError(TetherError):
    """Base of the errors of one LLM attempt."""


class ProviderError(LLMError):
    """One attempt failed. ``classification`` says what kind of failure it was and what to do.

    Providers raise it; the call loop catches it, records the attempt and acts on it. Only its
    ``kind`` and ``summary`` ever reach a log line: its text is never pasted into a prompt.
    """

    def __init__(self, classification: Classification, *, partial_text: str = "") -> None:
        super().__init__(classification.summary())
        self.classification = classification
        self.partial_text = partial_text


class MissingExtra(ConfigurationError):
    """The SDK for a provider is not installed."""

    def __init__(self, provider: str, extra: str, module: str) -> None:
        super().__init__(
            f"model prefix {provider!r} needs the {module!r} package, which is not installed; "
            f'run: pip install "tether[{extra}]"'
        )
        self.provider = provider
        self.extra = extra


class MissingAPIKey(ConfigurationError):
    """No API key for a provider was found: nothing was sent."""

    def __init__(self, provider: str, env_vars: tuple[str, ...]) -> None:
        names = " or ".join(env_vars)
        super().__init__(
            f"no API key for {provider!r}: set {names} in the environment "
            f"(or pass api_key=...); no request was sent"
        )
        self.provider = provider
        self.env_vars = env_vars


class UnknownProvider(ConfigurationError):
    """A model string does not start with a known provider prefix."""


class LLMCallFailed(NonRetriableError):
    """A logical LLM call failed for good, after every retry, re-ask and fallback it was allowed.

    ``kind`` is the class of the last failure, ``attempts`` every attempt made (failed ones
    included, with their usage and cost), ``cost_usd`` what the call cost in all.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind | None = None,
        attempts: list[AttemptRecord] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.attempts: list[AttemptRecord] = list(attempts or [])

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd or 0.0 for a in self.attempts)


class ContextLengthExceeded(LLMCallFailed):
    """The prompt does not fit the context window of any model left in the chain.

    Shorten the messages, or add a model with a larger context window to ``fallbacks``.
    """


class ContentFiltered(LLMCallFailed):
    """The provider refused the request or filtered the reply (safety, recitation, refusal)."""


class InvalidOutput(LLMCallFailed):
    """The reply did not validate against ``output`` (or a tool call's arguments were not JSON)
    after the re-ask budget was used up. ``text`` is the last reply, ``errors`` the last
    validation errors."""

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        errors: str = "",
        kind: ErrorKind | None = None,
        attempts: list[AttemptRecord] | None = None,
    ) -> None:
        super().__init__(message, kind=kind, attempts=attempts)
        self.text = text
        self.errors = errors


class LLMDeadlineExceeded(LLMCallFailed, TimeoutError):
    """The call's deadline (default 120 s) ran out before any attempt succeeded."""


class CostLimitExceeded(LLMCallFailed):
    """``max_cost_usd`` was reached; no further attempt was started."""


class StreamInterrupted(LLMCallFailed):
    """A stream failed after tokens had reached the caller, so it was not retried.

    ``partial_text`` and ``partial_tool_calls`` hold what was received before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        partial_tool_calls: list[ToolCall] | None = None,
        kind: ErrorKind | None = None,
        attempts: list[AttemptRecord] | None = None,
    ) -> None:
        super().__init__(message, kind=kind, attempts=attempts)
        self.partial_text = partial_text
        self.partial_tool_calls: list[ToolCall] = list(partial_tool_calls or [])


class MemoryNotFound(TetherError):
    """No current memory item with this id belongs to this subject."""


class MemoryDisabled(TetherError):
    """The subject's preferences turn long-term memory off (``preferences["memory"] = False``)."""


class SubjectNotFound(TetherError):
    """Nothing is kept about this subject: no memory, window, preference, run or event."""

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"nothing is kept about subject {subject!r}: no memory, window, preference, run "
            "or event. Check the id (`tether subject list` lists the subjects)."
        )
        self.subject = subject


class InvalidPreference(TetherError):
    """A preference value (or name) that cannot be stored as JSON; nothing was written."""


class InvalidMemory(TetherError, ValueError):
    """A memory write or search given bad input (empty or oversized text, bad tags, bad k):
    nothing was written."""


class MemoryIndexMismatch(TetherError):
    """The store's memory vectors were made by another embedder or dimension than the one
    configured: run ``tether memory reindex`` (or configure the index's embedder)."""


class EncryptionError(TetherError):
    """A payload cannot be encrypted or decrypted: it was altered on disk, or is in clear
    in a store that encrypts (encryption at rest, ``tether.store.encryption``)."""


class EncryptionKeyError(EncryptionError):
    """The encryption key is wrong, missing or malformed; the message says which key the
    store needs (by id, never the key) and how to give it."""


class SubjectKeyDestroyed(EncryptionError):
    """The data of a forgotten subject: its key was destroyed, so it cannot be read."""

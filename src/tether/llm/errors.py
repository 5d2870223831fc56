"""Errors raised by ``tether.llm``.

    TetherError
    ├── ConfigurationError
    │   ├── MissingExtra            the provider's SDK is not installed: the message has the pip line
    │   ├── MissingAPIKey           no API key in the environment: raised before any request
    │   └── UnknownProvider         a model string with no known ``provider:`` prefix
    ├── LLMError                    base of the errors below
    │   └── ProviderError           one attempt failed; carries its classification (internal)
    └── NonRetriableError
        └── LLMCallFailed           a logical call failed for good (``.kind``, ``.attempts``)
            ├── ContextLengthExceeded   no model in the chain has a large enough context
            ├── ContentFiltered         the provider refused or filtered the reply
            ├── InvalidOutput           the structured output did not validate within the re-ask budget
            ├── LLMDeadlineExceeded     the call's deadline ran out (also a ``TimeoutError``)
            ├── CostLimitExceeded       the call's or the run's ``max_cost_usd`` was reached
            └── StreamInterrupted       a stream failed after its first token (``.partial_text``)

``LLMCallFailed`` is a ``NonRetriableError``: an LLM call has its own retry policy (the
classifier and the deadline), so a durable step must not retry it again on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tether.errors import ConfigurationError, NonRetriableError, TetherError

if TYPE_CHECKING:
    from tether.llm.classify import Classification, ErrorKind
    from tether.llm.types import AttemptRecord, ToolCall


class LLMError(TetherError):
    """Base of the errors of one LLM call or attempt."""


class ProviderError(LLMError):
    """One attempt failed. ``classification`` says what kind of failure it was and what to do.

    Adapters raise it; the call loop catches it, records the attempt and acts on it. Only its
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

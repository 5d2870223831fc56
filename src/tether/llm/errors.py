"""The errors of ``tether.llm``, defined in the one tree of ``tether.errors`` (see its map)
and named here too for code that imports them from the LLM layer."""

from tether.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    CostLimitExceeded,
    InvalidOutput,
    LLMCallFailed,
    LLMDeadlineExceeded,
    LLMError,
    MissingAPIKey,
    MissingExtra,
    ProviderError,
    StreamInterrupted,
    UnknownProvider,
)

__all__ = [
    "ContentFiltered",
    "ContextLengthExceeded",
    "CostLimitExceeded",
    "InvalidOutput",
    "LLMCallFailed",
    "LLMDeadlineExceeded",
    "LLMError",
    "MissingAPIKey",
    "MissingExtra",
    "ProviderError",
    "StreamInterrupted",
    "UnknownProvider",
]

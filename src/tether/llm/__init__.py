"""Reliable LLM calls: providers by prefix, one error classifier, retries that honour the
server's delay, fallbacks, circuit breakers, structured output with re-asks, usage and cost
on every attempt, streaming, and a deadline over the whole call. See ``docs/llm.md``."""

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
from tether.llm.call import LLMStream, acomplete, aembed, astream
from tether.llm.circuit import (
    CircuitBreaker,
    CircuitStatus,
    CircuitStore,
    KVCircuitStore,
    MemoryCircuitStore,
    default_breaker,
)
from tether.llm.classify import Action, Classification, ErrorKind, classify_http
from tether.llm.policy import Budget
from tether.llm.prices import ModelInfo, PriceTable, default_prices, set_prices
from tether.llm.providers import Provider
from tether.llm.sync import SyncStream, complete, embed, stream
from tether.llm.tokens import (
    TokenCounter,
    acount_tokens,
    context_window,
    count_tokens,
    max_output_tokens,
    token_counter,
)
from tether.llm.types import (
    AttemptRecord,
    Embedding,
    LLMResponse,
    Message,
    StreamChunk,
    Tool,
    ToolCall,
    Usage,
    restore,
)

__all__ = [
    "Action",
    "AttemptRecord",
    "Budget",
    "CircuitBreaker",
    "CircuitStatus",
    "CircuitStore",
    "Classification",
    "ContentFiltered",
    "ContextLengthExceeded",
    "CostLimitExceeded",
    "Embedding",
    "ErrorKind",
    "InvalidOutput",
    "KVCircuitStore",
    "LLMCallFailed",
    "LLMDeadlineExceeded",
    "LLMError",
    "LLMResponse",
    "LLMStream",
    "MemoryCircuitStore",
    "Message",
    "MissingAPIKey",
    "MissingExtra",
    "ModelInfo",
    "PriceTable",
    "Provider",
    "ProviderError",
    "StreamChunk",
    "StreamInterrupted",
    "SyncStream",
    "TokenCounter",
    "Tool",
    "ToolCall",
    "UnknownProvider",
    "Usage",
    "acomplete",
    "acount_tokens",
    "aembed",
    "astream",
    "classify_http",
    "complete",
    "context_window",
    "count_tokens",
    "default_breaker",
    "default_prices",
    "embed",
    "max_output_tokens",
    "restore",
    "set_prices",
    "stream",
    "token_counter",
]

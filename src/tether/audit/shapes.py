"""What the scanner knows about the libraries it audits: client constructors, call shapes,
retry decorators, error classes and instrumentation hooks, by fully qualified name.

SDK defaults the rules rely on (see docs/audit.md for the sources):
- OpenAI and Anthropic Python SDKs: ``timeout`` 600 s, ``max_retries`` 2.
- LangChain's ChatOpenAI / ChatAnthropic pass through to those SDKs (timeout unset, 2 retries).
- LiteLLM ``completion``: a 600 s request timeout unless ``timeout=`` is given; its retries are
  counted only when ``num_retries`` is set (the default has changed between versions).
- google-genai: no client timeout unless ``HttpOptions(timeout=ms)``; SDK retries counted only
  when ``retry_options`` is set.
- requests: no timeout at all; httpx: 5 s unless ``timeout=None``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientKind:
    """A family of clients: how it sets a timeout and its SDK retries."""

    name: str  # openai | anthropic | gemini | litellm | langchain | httpx | requests
    timeout_kwargs: tuple[str, ...]
    retry_kwargs: tuple[str, ...]
    default_retries: int
    default_timeout: bool  # True: a sane timeout applies when none is set
    model: bool = True  # False for plain HTTP clients


OPENAI = ClientKind("openai", ("timeout",), ("max_retries",), 2, False)
ANTHROPIC = ClientKind("anthropic", ("timeout",), ("max_retries",), 2, False)
GEMINI = ClientKind("gemini", ("http_options",), ("http_options",), 0, False)
LITELLM = ClientKind("litellm", ("timeout", "request_timeout"), ("num_retries",), 0, False)
LANGCHAIN = ClientKind(
    "langchain",
    ("timeout", "request_timeout", "default_request_timeout"),
    ("max_retries",),
    2,
    False,
)
LANGCHAIN_GOOGLE = ClientKind("langchain", ("timeout",), ("max_retries",), 6, False)
HTTPX = ClientKind("httpx", ("timeout",), (), 0, True, model=False)
REQUESTS = ClientKind("requests", ("timeout",), (), 0, False, model=False)
AIOHTTP = ClientKind("aiohttp", ("timeout",), (), 0, True, model=False)

CONSTRUCTORS: dict[str, ClientKind] = {
    "openai.OpenAI": OPENAI,
    "openai.AsyncOpenAI": OPENAI,
    "openai.AzureOpenAI": OPENAI,
    "openai.AsyncAzureOpenAI": OPENAI,
    "anthropic.Anthropic": ANTHROPIC,
    "anthropic.AsyncAnthropic": ANTHROPIC,
    "anthropic.AnthropicBedrock": ANTHROPIC,
    "anthropic.AsyncAnthropicBedrock": ANTHROPIC,
    "anthropic.AnthropicVertex": ANTHROPIC,
    "anthropic.AsyncAnthropicVertex": ANTHROPIC,
    "google.genai.Client": GEMINI,
    "google.genai.client.Client": GEMINI,
    "litellm.Router": LITELLM,
    "litellm.router.Router": LITELLM,
    "langchain_openai.ChatOpenAI": LANGCHAIN,
    "langchain_openai.AzureChatOpenAI": LANGCHAIN,
    "langchain_openai.chat_models.ChatOpenAI": LANGCHAIN,
    "langchain_community.chat_models.ChatOpenAI": LANGCHAIN,
    "langchain.chat_models.ChatOpenAI": LANGCHAIN,
    "langchain_anthropic.ChatAnthropic": LANGCHAIN,
    "langchain.chat_models.init_chat_model": LANGCHAIN,
    "langchain_google_genai.ChatGoogleGenerativeAI": LANGCHAIN_GOOGLE,
    "httpx.Client": HTTPX,
    "httpx.AsyncClient": HTTPX,
    "requests.Session": REQUESTS,
    "requests.session": REQUESTS,
    "aiohttp.ClientSession": AIOHTTP,
}

# Methods (the attribute path after the client) that call a model, per kind.
MODEL_METHODS: dict[str, frozenset[tuple[str, ...]]] = {
    "openai": frozenset(
        {
            ("chat", "completions", "create"),
            ("chat", "completions", "parse"),
            ("chat", "completions", "stream"),
            ("beta", "chat", "completions", "parse"),
            ("beta", "chat", "completions", "stream"),
            ("responses", "create"),
            ("responses", "parse"),
            ("responses", "stream"),
            ("completions", "create"),
            ("embeddings", "create"),
        }
    ),
    "anthropic": frozenset(
        {
            ("messages", "create"),
            ("messages", "stream"),
            ("messages", "parse"),
            ("beta", "messages", "create"),
            ("beta", "messages", "stream"),
            ("completions", "create"),
        }
    ),
    "gemini": frozenset(
        {
            ("models", "generate_content"),
            ("models", "generate_content_stream"),
            ("models", "embed_content"),
            ("aio", "models", "generate_content"),
            ("aio", "models", "generate_content_stream"),
            ("aio", "models", "embed_content"),
        }
    ),
    "gemini-chat": frozenset({("send_message",), ("send_message_stream",)}),
    "litellm": frozenset({("completion",), ("acompletion",), ("embedding",), ("aembedding",)}),
    "langchain": frozenset(
        {
            ("invoke",),
            ("ainvoke",),
            ("stream",),
            ("astream",),
            ("batch",),
            ("abatch",),
            ("predict",),
            ("apredict",),
            ("run",),
            ("arun",),
        }
    ),
}

# Paths distinctive enough to be model calls on a client the scanner cannot trace, when the
# module imports the SDK named in the value.
SHAPE_ONLY: dict[tuple[str, ...], str] = {
    ("chat", "completions", "create"): "openai",
    ("chat", "completions", "parse"): "openai",
    ("beta", "chat", "completions", "parse"): "openai",
    ("responses", "create"): "openai",
    ("messages", "create"): "anthropic",
    ("messages", "stream"): "anthropic",
    ("models", "generate_content"): "google.genai",
    ("aio", "models", "generate_content"): "google.genai",
}

# Module-level functions that call a model: qualified name -> kind.
MODEL_FUNCTIONS: dict[str, ClientKind] = {
    "litellm.completion": LITELLM,
    "litellm.acompletion": LITELLM,
    "litellm.text_completion": LITELLM,
    "litellm.embedding": LITELLM,
    "litellm.aembedding": LITELLM,
    "litellm.completion_with_retries": LITELLM,
    "openai.chat.completions.create": OPENAI,  # the module-level default client (v1)
    "openai.responses.create": OPENAI,
    "openai.embeddings.create": OPENAI,
    "openai.ChatCompletion.create": OPENAI,  # v0
    "openai.ChatCompletion.acreate": OPENAI,
    "openai.Completion.create": OPENAI,
}

# Methods that derive a client or runnable of the same kind (configuration carried over).
DERIVING: frozenset[str] = frozenset(
    {
        "with_options",
        "with_structured_output",
        "bind_tools",
        "bind",
        "with_config",
        "with_fallbacks",
        "with_retry",
        "with_raw_response",
        "copy",
    }
)

# tether's own calls: policy, deadline and tracing included.
TETHER_CALLS: frozenset[str] = frozenset(
    {
        "tether.llm.complete",
        "tether.llm.acomplete",
        "tether.llm.stream",
        "tether.llm.astream",
        "tether.llm.embed",
        "tether.llm.aembed",
    }
)
STEP_METHODS: frozenset[str] = frozenset({"run", "llm", "parallel", "invoke"})

HTTP_FUNCTIONS: dict[str, ClientKind] = {
    **{
        f"requests.{m}": REQUESTS
        for m in ("get", "post", "put", "patch", "delete", "head", "request")
    },
    **{
        f"httpx.{m}": HTTPX
        for m in ("get", "post", "put", "patch", "delete", "head", "request", "stream")
    },
}
HTTP_METHODS: frozenset[str] = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "request", "send", "stream"}
)
# URL fragments that make an HTTP request a model call.
MODEL_URL_HINTS: tuple[str, ...] = (
    "/chat/completions",
    "/v1/completions",
    "/v1/messages",
    "/v1/responses",
    ":generatecontent",
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "/api/generate",
    "/api/chat",
)

SLEEPS: frozenset[str] = frozenset({"time.sleep", "asyncio.sleep", "trio.sleep", "anyio.sleep"})

TENACITY_DECORATORS: frozenset[str] = frozenset({"tenacity.retry"})
TENACITY_RETRYING: frozenset[str] = frozenset(
    {"tenacity.Retrying", "tenacity.AsyncRetrying", "tenacity.retry"}
)
BACKOFF_DECORATORS: frozenset[str] = frozenset({"backoff.on_exception"})

# Error classes that never succeed on retry (the last segment of the qualified name).
NON_RETRIABLE: frozenset[str] = frozenset(
    {
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "UnprocessableEntityError",
        "ContextWindowExceededError",
        "ContentPolicyViolationError",
        "InvalidRequestError",  # openai v0's 400
    }
)
# Classes broad enough to include the non-retriable ones.
BROAD: frozenset[str] = frozenset(
    {
        "Exception",
        "BaseException",
        "APIError",
        "APIStatusError",
        "OpenAIError",
        "AnthropicError",
        "APIResponseValidationError",
        "ClientError",  # google.genai.errors.ClientError: every 4xx
        "HTTPError",
        "HTTPStatusError",
        "RequestException",
    }
)
NON_RETRIABLE_STATUS: frozenset[int] = frozenset({400, 401, 403, 404, 422})

# Instrumentation that covers every model call of a module.
INSTRUMENTATION_CALLS: tuple[str, ...] = (
    "Instrumentor",  # opentelemetry-instrumentation-openai / -anthropic / -langchain ... .instrument()
    "logfire.instrument_",
    "logfire.configure",
    "openlit.init",
    "Traceloop.init",
    "weave.init",
    "agentops.init",
    "autolog",
    "langsmith.wrappers.wrap_openai",
    "langsmith.wrappers.wrap_anthropic",
)
INSTRUMENTATION_IMPORTS: tuple[str, ...] = ("langfuse.openai",)
INSTRUMENTATION_ATTRS: frozenset[str] = frozenset(
    {"litellm.success_callback", "litellm.failure_callback", "litellm.callbacks"}
)
LOG_METHODS: frozenset[str] = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log", "msg"}
)
METRIC_METHODS: frozenset[str] = frozenset(
    {"inc", "observe", "record", "add", "labels", "timing", "incr", "gauge", "histogram"}
)
SPAN_HINTS: tuple[str, ...] = ("span", "trace", "observe", "instrument", "traceable")
TRIM_HINTS: tuple[str, ...] = (
    "trim",
    "truncat",
    "summar",
    "compact",
    "budget",
    "prune",
    "window",
    "count_tokens",
    "num_tokens",
    "token_count",
    "tiktoken",
    "compress",
    "condense",
)

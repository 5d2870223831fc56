"""The code audit's rules: stable ids, the area each belongs to, and the fix tether offers.

Ids never change meaning once released; a retired rule keeps its id unused. ``weight`` is a
finding's cost in its area's score (see ``tether.audit.model.score``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Area = Literal["orchestration", "context", "retry", "observability"]
Level = Literal["error", "warning", "note"]

AREAS: tuple[Area, ...] = ("orchestration", "context", "retry", "observability")
WEIGHTS: dict[Level, float] = {"error": 1.0, "warning": 0.5, "note": 0.25}


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    area: Area
    level: Level
    short: str
    full: str
    fix: str

    @property
    def weight(self) -> float:
        return WEIGHTS[self.level]


_RULES = [
    Rule(
        "TH101",
        "model-call-outside-step",
        "orchestration",
        "error",
        "Model call outside a durable step",
        "A model call that is not inside a durable step: a crash, a deploy or a timeout after "
        "it loses the answer (and its cost), and the caller starts over. Inside a durable "
        "function's body but outside a step, it runs again on every resume.",
        'Make it a step: `await ctx.step.llm("id", model="openai:gpt-4.1-mini", messages=...)` '
        'inside a `@th.function`, or wrap the call: `ctx.step.run("id", fn, ...)`; outside '
        "durable functions use `tether.llm.complete(...)`.",
    ),
    Rule(
        "TH102",
        "tool-call-outside-step",
        "orchestration",
        "warning",
        "Tool or HTTP call outside a durable step in a model workflow",
        "A tool or HTTP call made by a function that also calls a model, outside a durable "
        "step: after a failure the workflow repeats side effects it already made, or loses "
        "their results.",
        'Run the tool as a step: `await ctx.step.run("tool-name", tool, **args)`, and pass '
        "`ctx.step.idempotency_key` to APIs with side effects.",
    ),
    Rule(
        "TH103",
        "workflow-without-checkpoint",
        "orchestration",
        "error",
        "Multi-call workflow with no checkpoint",
        "A function that chains several model or tool calls (or repeats them in a loop) with "
        "no checkpoint between them: any failure restarts all of the work, paying again for "
        "every call already made.",
        "Make the function durable (`@th.function`) and each call a step "
        "(`ctx.step.llm`, `ctx.step.run`): completed steps are not executed again after a crash.",
    ),
    Rule(
        "TH201",
        "unbounded-messages-in-loop",
        "context",
        "error",
        "Message list grows in a loop with no budget",
        "A list of messages sent to a model grows on every turn of a loop, with no token "
        "budget, trimming or summarisation: it ends in a context-length error (a 400 that no "
        "retry fixes) or a growing bill.",
        'Keep the conversation in a window: `conv = ctx.context("key", model=...)`, '
        '`await conv.add("user", text)`, `ctx.step.llm("id", model=..., context=conv)` '
        "(budgeted, compacted), or trim to a token budget before each call.",
    ),
    Rule(
        "TH202",
        "unbounded-history-across-calls",
        "context",
        "warning",
        "Conversation history kept across calls with no bound",
        "A module-level or instance-level history that every call appends to and that is sent "
        "to the model: it grows for as long as the process lives (and leaks between users "
        "when it is global).",
        'Use one window per conversation: `th.context("conversation:" + id, model=...)` '
        "(persisted, budgeted), or cap and trim the history before each call.",
    ),
    Rule(
        "TH301",
        "hand-rolled-retry",
        "retry",
        "warning",
        "Hand-rolled retry loop",
        "A loop (or an except handler calling again) that retries a model or HTTP call by "
        "hand: its attempts are not recorded, its backoff holds a thread, and it usually "
        "retries errors that cannot succeed.",
        "Let a step own the retries: `ctx.step.llm(...)` (classified errors, Retry-After, "
        'fallbacks) or `ctx.step.options(retries=tether.Retry(max_attempts=4)).run("id", fn)`.',
    ),
    Rule(
        "TH302",
        "sleep-backoff",
        "retry",
        "warning",
        "`time.sleep` backoff",
        "A sleep between attempts of a failed call: it blocks a thread (or the event loop for "
        "`time.sleep` in async code), ignores the server's Retry-After and is lost on restart.",
        'Use `tether.Retry(backoff="exponential", initial=1.0, max_delay=60.0)` on the step: '
        "long backoffs suspend the run durably and `RetryAfterError(seconds)` honours the "
        "server's delay.",
    ),
    Rule(
        "TH303",
        "retries-non-retriable",
        "retry",
        "error",
        "Retrying errors that cannot succeed",
        "A retry that includes non-retriable errors: 400 bad request (context length "
        "exceeded included), 401, 403, 404, 422 (`BadRequestError`, `AuthenticationError`, "
        "`PermissionDeniedError`, `NotFoundError`, `UnprocessableEntityError`), or every "
        "exception: each attempt fails the same way and multiplies the latency.",
        "Retry only transient errors (429, 5xx, timeouts, connection errors): "
        "`retry_if_exception_type((RateLimitError, APITimeoutError, APIConnectionError, "
        "InternalServerError))`, or `ctx.step.llm`, whose classifier never retries them; raise "
        "`tether.NonRetriableError` from a step to stop retrying.",
    ),
    Rule(
        "TH304",
        "model-call-without-timeout",
        "retry",
        "warning",
        "Model call with no timeout",
        "A model call whose client sets no timeout: the OpenAI and Anthropic SDKs wait up to "
        "600 s per attempt (LiteLLM too, LangChain through them), a raw HTTP request forever, "
        "so one hung provider holds the caller for minutes.",
        "Set a timeout on the client (`OpenAI(timeout=30, max_retries=0)`, "
        "`genai.Client(http_options=HttpOptions(timeout=30_000))`, `ChatOpenAI(timeout=30)`, "
        "`completion(..., timeout=30)`) or use `ctx.step.llm(..., deadline=60)`.",
    ),
    Rule(
        "TH305",
        "http-without-timeout",
        "retry",
        "warning",
        "HTTP request with no timeout",
        "A `requests` call with no `timeout=` (or an httpx call with `timeout=None`) waits "
        "forever on a server that stops answering.",
        "Pass `timeout=(3.05, 30)` (connect, read), or run it as a step with "
        "`ctx.step.options(timeout=30).run(...)`.",
    ),
    Rule(
        "TH306",
        "stacked-retries",
        "retry",
        "warning",
        "SDK retries stacked under application retries",
        "A model call retried by the application (tenacity, backoff, a loop or a tether step) "
        "through a client that keeps its own retries (`max_retries=2` by default in the "
        "OpenAI, Anthropic and LangChain clients): attempts multiply (4 x 3 = 12) and so "
        "do latency and cost.",
        "Keep one retry layer: build the client with `max_retries=0` "
        "(`client.with_options(max_retries=0)`) under an application retry, or call "
        "`ctx.step.llm`, which switches SDK retries off.",
    ),
    Rule(
        "TH307",
        "bare-except",
        "retry",
        "error",
        "Bare `except:`",
        "A bare `except:` around model or tool calls (or in a durable function) catches "
        "everything: KeyboardInterrupt, SystemExit, and tether's suspension and cancellation "
        "signals, which must reach the harness.",
        "Catch the errors you handle (`except openai.RateLimitError:`), or at least "
        "`except Exception:` with a log line and a re-raise.",
    ),
    Rule(
        "TH308",
        "silent-except",
        "retry",
        "error",
        "Silent `except` around a model or tool call",
        "An except handler around a model or tool call that discards the error (`pass`, "
        "`continue`, an empty return) and logs nothing: failures vanish, and so does any "
        "chance of fixing them.",
        "Let the error fail the step (tether records every attempt), or log it "
        "(`logger.exception(...)`) and handle the specific class.",
    ),
    Rule(
        "TH401",
        "model-call-unobserved",
        "observability",
        "warning",
        "Model call with no span, log or metric",
        "A model call with no OpenTelemetry span, no log line and no metric around it, and "
        "no instrumentation of its client: its latency, tokens, cost and errors are invisible.",
        "Make it a tether step (every step, attempt and LLM call is a span with GenAI "
        "attributes and metrics), or wrap it: `with tracer.start_as_current_span(...)`, "
        "`logger.info(...)`, or instrument the client (`OpenAIInstrumentor().instrument()`).",
    ),
]

RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}

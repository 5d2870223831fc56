"""The OpenTelemetry observer: spans, metrics and log correlation for runs, steps,
attempts and LLM calls. Imported only when tracing is on (see ``tether.observe``).

Span tree (one trace per run, across processes and restarts):

    run <function>                 the run's first execution (the trace root)
      run <function> (resumed)     each later execution of the same run, in any process
        step <id>                  one step executed in this execution
          attempt <n>              one call of the step callable (current span in the callable)
            chat <model>           one provider call (GenAI semantic conventions)
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tether.observe import TRACE_KV_PREFIX as KV_PREFIX
from tether.observe.redact import Redactor, default_redactor

if TYPE_CHECKING:
    from tether.durable.execution import RunExecution
    from tether.durable.retry import Retry

SEMCONV_VERSION = "1.37.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
_GENAI_PROVIDERS = {"google": "gcp.gemini", "local": "llama_cpp", "openai-compatible": "openai"}


def _model_name(spec: str) -> str:
    """``openai:gpt-4o-mini`` -> ``gpt-4o-mini``; ``openai-compatible:URL#tiny`` -> ``tiny``."""
    if "#" in spec:
        return spec.rsplit("#", 1)[1]
    return spec.split(":", 1)[1] if ":" in spec else spec


# The LLM spans of the attempt executing in this task (finished once the response is known).
_PENDING: contextvars.ContextVar[list[tuple[Any, Any]] | None] = contextvars.ContextVar(
    "tether_llm_pending", default=None
)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass
class _RunState:
    span: Any
    parent: Any  # the context the step spans are children of
    trace_id: str
    span_id: str
    open_steps: set[Any] = field(default_factory=set)


class Observer:
    """Receives the engine's run, step and attempt boundaries and emits telemetry."""

    def __init__(
        self,
        tracer_provider: Any,
        meter_provider: Any = None,
        *,
        capture_content: bool | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.tracer = tracer_provider.get_tracer("tether", schema_url=SCHEMA_URL)
        meter_provider = meter_provider or metrics.get_meter_provider()
        # No meter provider anywhere: skip the per-attempt metric calls (they would be no-ops).
        self.metered = type(meter_provider).__name__ not in (
            "NoOpMeterProvider",
            "_ProxyMeterProvider",
        )
        meter = meter_provider.get_meter("tether", schema_url=SCHEMA_URL)
        if capture_content is None:
            flag = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
            capture_content = flag.lower() in ("1", "true", "yes")
        self.capture_content = capture_content
        self.redactor = redactor or default_redactor()
        self.runs: dict[str, _RunState] = {}
        self._lock = threading.Lock()
        self.runs_started = meter.create_counter("tether.runs.started", "{run}", "Runs started")
        self.runs_completed = meter.create_counter(
            "tether.runs.completed", "{run}", "Runs completed"
        )
        self.runs_failed = meter.create_counter("tether.runs.failed", "{run}", "Runs failed")
        self.runs_cancelled = meter.create_counter(
            "tether.runs.cancelled", "{run}", "Runs cancelled"
        )
        self.attempts = meter.create_counter(
            "tether.step.attempts", "{attempt}", "Step attempts (first tries and retries)"
        )
        self.retries = meter.create_counter("tether.step.retries", "{attempt}", "Step retries")
        self.step_duration = meter.create_histogram(
            "tether.step.duration", "s", "Duration of one step attempt"
        )
        self.run_duration = meter.create_histogram(
            "tether.run.duration", "s", "Duration of a run, from creation to its end"
        )
        self.queue_wait = meter.create_histogram(
            "tether.run.queue_wait", "s", "Time from a run's creation to its first execution"
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", "{token}", "Tokens used per LLM call"
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", "s", "Duration of one LLM call"
        )
        self.cost = meter.create_counter("tether.llm.cost", "USD", "Cost of LLM calls")
        self.context_tokens = meter.create_histogram(
            "tether.context.tokens", "{token}", "Tokens of a built context window, per slot"
        )
        self.context_usage = meter.create_histogram(
            "tether.context.usage", "1", "A built context window's tokens over its budget"
        )
        self.context_compactions = meter.create_counter(
            "tether.context.compactions", "{compaction}", "Context window compactions"
        )
        self.context_saved = meter.create_counter(
            "tether.context.tokens_saved", "{token}", "Tokens saved by compaction"
        )
        self.context_hits = meter.create_counter(
            "tether.context.retrieval_hits", "{hit}", "Items retrieved into the memory slot"
        )
        self._log_filter = _LogFilter(self)
        self.saver = _ContextSaver()
        logging.getLogger("tether.run").addFilter(self._log_filter)

    def close(self) -> None:
        logging.getLogger("tether.run").removeFilter(self._log_filter)

    # -- runs ---------------------------------------------------------------------------------
    def run_begin(self, ex: RunExecution) -> None:
        claim = ex.claim
        attrs = {
            "tether.run.id": ex.run_id,
            "tether.function.id": ex.function.id,
            "tether.event.name": claim.event_name,
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": ex.function.id,
        }
        stored = None
        if ex.memo:  # steps recorded: an earlier execution started the trace
            with contextlib.suppress(Exception):  # telemetry never stops a run
                stored = ex.store.kv_get(KV_PREFIX + ex.run_id)
        name = f"run {ex.function.id}"
        if stored is None:
            span = self.tracer.start_span(
                name, context=otel_context.Context(), kind=SpanKind.INTERNAL, attributes=attrs
            )
            sc = span.get_span_context()
            trace_id, span_id = f"{sc.trace_id:032x}", f"{sc.span_id:016x}"
            flags = f"{int(sc.trace_flags):02x}"  # the sampling decision, kept for resumes
            self.saver.later(ex.store, ex.run_id, f"{trace_id}-{span_id}-{flags}")
            self.runs_started.add(1, {"tether.function.id": ex.function.id})
            self.queue_wait.record(
                max(0.0, ex.clock.now() - claim.created_at), {"tether.function.id": ex.function.id}
            )
        else:
            trace_id, span_id, *rest = stored.split("-")
            sampled = int(rest[0], 16) if rest else trace.TraceFlags.SAMPLED
            root = trace.NonRecordingSpan(
                trace.SpanContext(
                    int(trace_id, 16),
                    int(span_id, 16),
                    is_remote=True,
                    trace_flags=trace.TraceFlags(sampled),
                )
            )
            span = self.tracer.start_span(
                f"{name} (resumed)",
                context=trace.set_span_in_context(root),
                kind=SpanKind.INTERNAL,
                attributes={**attrs, "tether.run.resumed": True},
            )
        with self._lock:
            self.runs[ex.run_id] = _RunState(
                span, trace.set_span_in_context(span), trace_id, span_id
            )

    def run_end(self, ex: RunExecution, status: str, error: BaseException | None) -> None:
        with self._lock:
            state = self.runs.pop(ex.run_id, None)
        if state is None:
            return
        for step_span in list(state.open_steps):
            step_span.set_attribute("tether.step.status", "suspended")
            step_span.end()
        if status in ("completed", "failed", "cancelled", "skipped"):
            self.saver.drop(ex.run_id)
        else:  # the run goes on later, maybe elsewhere: its trace context must be stored now
            self.saver.now(ex.run_id)
        span = state.span
        span.set_attribute("tether.run.status", status)
        labels = {"tether.function.id": ex.function.id}
        if status == "failed":
            if error is not None:
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, self.redactor.text(str(error))[:500]))
            else:
                span.set_status(Status(StatusCode.ERROR, "run failed"))
            self.runs_failed.add(1, labels)
        elif status == "completed":
            self.runs_completed.add(1, labels)
        elif status == "cancelled":
            self.runs_cancelled.add(1, labels)
        if status in ("completed", "failed", "cancelled"):
            self.run_duration.record(
                max(0.0, ex.clock.now() - ex.claim.created_at),
                {**labels, "tether.run.status": status},
            )
        span.end()

    def ids(self, run_id: str) -> tuple[str, str] | None:
        """(trace id, span id) of the run's current execution in this process."""
        state = self.runs.get(run_id)
        if state is None:
            return None
        sc = state.span.get_span_context()
        return state.trace_id, f"{sc.span_id:016x}"

    # -- steps and attempts -----------------------------------------------------------------
    def wrap_step(
        self, ex: RunExecution, step_id: str, attempt: int, fn: Callable[..., Any], policy: Retry
    ) -> Callable[..., Any]:
        """The step callable, with a step span around its attempts and an attempt span
        (the current span while it runs) around each call."""
        step = _StepSpans(self, ex, step_id, attempt, policy)
        if inspect.iscoroutinefunction(fn):

            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                span, token, pending = step.begin()
                try:
                    value = await fn(*args, **kwargs)
                except BaseException as exc:
                    step.end(span, token, pending, exc, None)
                    raise
                step.end(span, token, pending, None, value)
                return value

            return _like(traced_async, fn)

        def traced(*args: Any, **kwargs: Any) -> Any:
            span, token, pending = step.begin()
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                step.end(span, token, pending, exc, None)
                raise
            step.end(span, token, pending, None, value)
            return value

        return _like(traced, fn)

    # -- LLM calls ----------------------------------------------------------------------------
    def context_report(self, key: str, report: Any) -> None:
        """A window's build (``ContextReport``): attributes of the current span (the step
        attempt that built it) and metrics."""
        attrs: dict[str, Any] = {
            "tether.context.key": key,
            "tether.context.budget": int(report.budget),
            "tether.context.tokens": int(report.tokens),
            "tether.context.full_tokens": int(report.full_tokens),
            "tether.context.trigger": report.trigger,
            "tether.context.compacted": bool(report.compacted),
            "tether.context.stubbed": len(report.stubbed),
            "tether.context.retrieved": len(report.retrieved),
        }
        if report.summarized_through is not None:
            attrs["tether.context.summarized_through"] = int(report.summarized_through)
        for slot, tokens in report.slots.items():
            attrs[f"tether.context.slot.{slot}"] = int(tokens)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(attrs)
        if not self.metered:
            return
        for slot, tokens in report.slots.items():
            if tokens:
                self.context_tokens.record(tokens, {"tether.context.slot": slot})
        if report.budget:
            self.context_usage.record(report.tokens / report.budget)
        if report.retrieved:
            self.context_hits.add(len(report.retrieved))

    def context_compacted(self, key: str, done: Any) -> None:
        """A compaction (``Compaction``): a span event and the counters."""
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "tether.context.compaction",
                {
                    "tether.context.key": key,
                    "tether.context.turns_folded": int(done.turns_folded),
                    "tether.context.tokens_saved": int(done.tokens_saved),
                },
            )
        if self.metered:
            self.context_compactions.add(1)
            self.context_saved.add(max(0, int(done.tokens_saved)))

    def llm_hook(
        self,
        messages: Any,
        options: dict[str, Any],
        chained: Callable[[Any], None] | None,
    ) -> Callable[[Any], None]:
        """An ``on_attempt`` callback for ``tether.llm``: one span per provider call, a child
        of the current attempt span, with GenAI semantic-convention attributes."""

        def on_attempt(record: Any) -> None:
            try:
                self._llm_span(record, messages, options)
            finally:
                if chained is not None:
                    chained(record)

        return on_attempt

    def _llm_span(self, record: Any, messages: Any, options: dict[str, Any]) -> None:
        model = _model_name(record.model)
        provider = _GENAI_PROVIDERS.get(record.provider, record.provider)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": int(record.usage.input_tokens),
            "gen_ai.usage.output_tokens": int(record.usage.output_tokens),
            "tether.llm.attempt": int(record.number),
        }
        if record.usage.cached_input_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = int(record.usage.cached_input_tokens)
        if record.usage.reasoning_tokens:
            attrs["gen_ai.usage.reasoning.output_tokens"] = int(record.usage.reasoning_tokens)
        if options.get("max_tokens") is not None:
            attrs["gen_ai.request.max_tokens"] = int(options["max_tokens"])
        if options.get("temperature") is not None:
            attrs["gen_ai.request.temperature"] = float(options["temperature"])
        if record.cost_usd is not None:
            attrs["tether.llm.cost_usd"] = float(record.cost_usd)
        if record.action:
            attrs["tether.llm.action"] = record.action
        if record.status is not None:
            attrs["http.response.status_code"] = int(record.status)
        if self.capture_content:
            attrs["gen_ai.input.messages"] = json.dumps(
                self.redactor.value(_messages_json(messages)), default=str
            )
        span = self.tracer.start_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=_ns(record.started_at),
        )
        metric_attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        if not record.ok:
            error_type = record.error_class or record.error_type or "error"
            span.set_attribute("error.type", error_type)
            metric_attrs["error.type"] = error_type
            span.set_status(
                Status(StatusCode.ERROR, self.redactor.text(record.error_message or "")[:500])
            )
        self.operation_duration.record(record.duration_s, metric_attrs)
        for kind, count in (
            ("input", record.usage.input_tokens),
            ("output", record.usage.output_tokens),
        ):
            if count:
                self.token_usage.record(count, {**metric_attrs, "gen_ai.token.type": kind})
        if record.cost_usd:
            self.cost.add(record.cost_usd, metric_attrs)
        end = _ns(record.started_at + record.duration_s)
        pending = _PENDING.get()
        if record.ok and pending is not None:
            pending.append((span, end))  # finished with the response (ids, output) below
        else:
            span.end(end_time=end)

    def finish_llm(self, pending: list[tuple[Any, Any]], value: Any) -> None:
        for i, (span, end) in enumerate(pending):
            if i == len(pending) - 1 and value is not None and hasattr(value, "finish_reason"):
                span.set_attribute("gen_ai.response.finish_reasons", [str(value.finish_reason)])
                span.set_attribute("gen_ai.response.model", _model_name(str(value.model)))
                span.set_attribute("gen_ai.output.type", "json" if value.parsed else "text")
                if self.capture_content:
                    out = {"role": "assistant", "parts": [], "finish_reason": value.finish_reason}
                    if value.text:
                        out["parts"].append({"type": "text", "content": value.text})
                    for call in value.tool_calls:
                        out["parts"].append(
                            {
                                "type": "tool_call",
                                "id": call.id,
                                "name": call.name,
                                "arguments": call.arguments,
                            }
                        )
                    span.set_attribute(
                        "gen_ai.output.messages",
                        json.dumps([self.redactor.value(out)], default=str),
                    )
            span.end(end_time=end)


def _like(wrapper: Callable[..., Any], fn: Any) -> Callable[..., Any]:
    """What the step machinery reads from a step callable: its annotations (a typed result
    is rebuilt through them) and, for type hints, the function itself (cheaper than
    ``functools.wraps``)."""
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    annotations = getattr(fn, "__annotations__", None)
    if annotations is not None:
        wrapper.__annotations__ = annotations
    return wrapper


class _ContextSaver:
    """Stores a run's trace context (``kv``) once the run has lasted ``delay`` seconds or
    stops without ending, so a short run that ends in one execution costs no write, and a
    long one that a crash interrupts still resumes in its trace."""

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        self.pending: dict[str, tuple[Any, str, float]] = {}
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None

    def later(self, store: Any, run_id: str, value: str) -> None:
        with self.cond:
            self.pending[run_id] = (store, value, time.monotonic() + self.delay)
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._loop, name="tether-otel-context", daemon=True
                )
                self.thread.start()

    def drop(self, run_id: str) -> None:
        with self.cond:
            self.pending.pop(run_id, None)

    def now(self, run_id: str) -> None:
        with self.cond:
            item = self.pending.pop(run_id, None)
        if item is not None:
            self._write(run_id, item[0], item[1])

    @staticmethod
    def _write(run_id: str, store: Any, value: str) -> None:
        with contextlib.suppress(Exception):
            store.kv_set(KV_PREFIX + run_id, value)

    def _loop(self) -> None:
        while True:
            with self.cond:
                self.cond.wait(self.delay / 2)
                now = time.monotonic()
                due = [(k, v) for k, v in self.pending.items() if v[2] <= now]
                for key, _ in due:
                    self.pending.pop(key, None)
            for key, (store, value, _) in due:
                self._write(key, store, value)


class _StepSpans:
    """The spans of one step executed in this process: the step span and its attempts."""

    __slots__ = ("attempt", "ex", "obs", "parent", "policy", "span", "step_id")

    def __init__(
        self, obs: Observer, ex: RunExecution, step_id: str, attempt: int, policy: Retry
    ) -> None:
        self.obs = obs
        self.ex = ex
        self.step_id = step_id
        self.attempt = attempt
        self.policy = policy
        self.span: Any = None
        self.parent: Any = None

    def begin(self) -> tuple[Any, Any, list[tuple[Any, Any]]]:
        obs = self.obs
        state = obs.runs.get(self.ex.run_id)
        if self.span is None:
            parent = state.parent if state is not None else None
            self.span = obs.tracer.start_span(
                f"step {self.step_id}",
                context=parent,
                attributes={"tether.step.id": self.step_id},
            )
            self.parent = trace.set_span_in_context(self.span)
            if state is not None:
                state.open_steps.add(self.span)
        span = obs.tracer.start_span(
            f"attempt {self.attempt}",
            context=self.parent,
            attributes={"tether.step.attempt": self.attempt},
        )
        pending: list[tuple[Any, Any]] = []
        token = (otel_context.attach(trace.set_span_in_context(span)), _PENDING.set(pending))
        return span, token, pending

    def end(
        self,
        span: Any,
        token: Any,
        pending: list[tuple[Any, Any]],
        error: BaseException | None,
        value: Any,
    ) -> None:
        otel_context.detach(token[0])
        _PENDING.reset(token[1])
        obs = self.obs
        if obs.metered:
            fid = {"tether.function.id": self.ex.function.id}
            obs.attempts.add(1, fid)
            if self.attempt:
                obs.retries.add(1, fid)
            start = getattr(span, "start_time", None)
            if start is not None:
                obs.step_duration.record((time.time_ns() - start) / 1e9, fid)
        if pending:
            obs.finish_llm(pending, value)
        final = True
        if error is not None:
            from tether.errors import NonRetriableError

            msg = obs.redactor.text(str(error))[:500]
            span.set_attribute("error.type", type(error).__name__)
            span.add_event(
                "exception",
                {
                    "exception.type": type(error).__name__,
                    "exception.message": msg,
                    "exception.stacktrace": obs.redactor.text(
                        "".join(traceback.format_exception(error))
                    )[-4000:],
                },
            )
            span.set_status(Status(StatusCode.ERROR, msg))
            final = (
                isinstance(error, NonRetriableError)
                or not isinstance(error, Exception)
                or self.attempt + 1 >= self.policy.max_attempts
            )
            if final:
                self.span.set_attribute("error.type", type(error).__name__)
                self.span.set_status(Status(StatusCode.ERROR, msg))
        span.end()
        self.attempt += 1
        if final:
            self.span.set_attribute("tether.step.attempts", self.attempt)
            self.span.end()
            state = obs.runs.get(self.ex.run_id)
            if state is not None:
                state.open_steps.discard(self.span)


def _messages_json(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "parts": [{"type": "text", "content": messages}]}]
    out = []
    for m in messages or []:
        if hasattr(m, "model_dump"):
            m = m.model_dump(mode="json", exclude_none=True)
        if isinstance(m, dict):
            out.append(
                {
                    "role": m.get("role", "user"),
                    "parts": [{"type": "text", "content": m.get("content", "")}],
                }
            )
    return out


class _LogFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` to ``ctx.log`` records and redacts their message."""

    def __init__(self, obs: Observer) -> None:
        super().__init__()
        self.obs = obs

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span()
        sc = span.get_span_context()
        if sc.is_valid:
            record.trace_id, record.span_id = f"{sc.trace_id:032x}", f"{sc.span_id:016x}"
        else:
            ids = self.obs.ids(getattr(record, "run_id", ""))
            if ids is not None:
                record.trace_id, record.span_id = ids
        try:
            message = record.getMessage()
        except Exception:
            return True
        record.msg, record.args = self.obs.redactor.text(message), None
        return True


__all__ = ["SEMCONV_VERSION", "Observer"]

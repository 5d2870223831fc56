"""Scores as OpenTelemetry ``gen_ai.evaluation.result`` events.

One span ``evaluation {name}`` per evaluated run, with one event per scorer carrying
``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value`` (absent when unscored),
``gen_ai.evaluation.score.label`` (``pass``, ``fail`` or ``unscored``) and
``gen_ai.evaluation.explanation`` (the reason or the error, redacted), plus ``tether.run.id``
(the evaluated run). The span is a child of the evaluated run's span when its trace context
was stored (``kv`` ``otel.trace:<run id>``: runs that lasted over a second or suspended),
else of the evaluating run's span. With tracing off this costs one attribute check.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from tether.observe import TRACE_KV_PREFIX

if TYPE_CHECKING:
    from tether.harness import Harness


def _stored_parent(inner: Harness, run_id: str) -> Any:
    from opentelemetry import trace

    try:
        stored = inner.store.kv_get(TRACE_KV_PREFIX + run_id)
    except Exception:
        return None
    if not stored:
        return None
    trace_id, span_id, *rest = stored.split("-")
    flags = int(rest[0], 16) if rest else int(trace.TraceFlags.SAMPLED)
    parent = trace.NonRecordingSpan(
        trace.SpanContext(
            int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=trace.TraceFlags(flags)
        )
    )
    return trace.set_span_in_context(parent)


def emit_scores(
    inner: Harness,
    evaluating_run: str,
    evaluated_run: str,
    name: str,
    scores: dict[str, dict[str, Any]],
) -> None:
    """Emit the scores of ``evaluated_run`` (computed by ``evaluating_run``); never raises."""
    observer = inner.engine.observer
    if observer is None or not scores:
        return
    with contextlib.suppress(Exception):  # telemetry never fails an evaluation
        parent = _stored_parent(inner, evaluated_run)
        if parent is None:
            state = observer.runs.get(evaluating_run)
            parent = state.parent if state is not None else None
        span = observer.tracer.start_span(
            f"evaluation {name}",
            context=parent,
            attributes={
                "tether.run.id": evaluated_run,
                "tether.eval.run_id": evaluating_run,
                "tether.eval.name": name,
            },
        )
        for scorer, score in scores.items():
            attrs: dict[str, Any] = {
                "gen_ai.evaluation.name": scorer,
                "tether.run.id": evaluated_run,
            }
            if score.get("error") is not None:
                attrs["gen_ai.evaluation.score.label"] = "unscored"
                attrs["gen_ai.evaluation.explanation"] = observer.redactor.text(score["error"])[
                    :500
                ]
            else:
                attrs["gen_ai.evaluation.score.value"] = float(score["value"])
                attrs["gen_ai.evaluation.score.label"] = "pass" if score.get("passed") else "fail"
                if score.get("reason"):
                    attrs["gen_ai.evaluation.explanation"] = observer.redactor.text(
                        score["reason"]
                    )[:500]
            span.add_event("gen_ai.evaluation.result", attrs)
        span.end()


__all__ = ["emit_scores"]

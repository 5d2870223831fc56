"""Plain data for the pages and the API: runs, waterfalls, LLM chats and function stats,
redacted (the store keeps real values; nothing leaves it unmasked)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from tether.observe.redact import Redactor
from tether.records import Run


def run_summary(run: Run, r: Redactor) -> dict[str, Any]:
    duration = None
    if run.ended_at is not None:
        duration = (run.ended_at - (run.started_at or run.created_at)).total_seconds()
    return {
        "id": run.id,
        "function_id": run.function_id,
        "status": run.status.value,
        "event_name": run.event_name,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "duration_s": duration,
        "reason": r.value(run.reason),
        "error": r.value(run.error),
        "replay_of": run.replay_of,
        "parent_id": run.parent_id,
        "subject": run.subject,
    }


def llm_view(output: Any) -> dict[str, Any] | None:
    """The chat view of a ``ctx.step.llm`` step, from its checkpointed response."""
    if not isinstance(output, dict) or not {"model", "provider", "usage", "attempts"} <= set(
        output
    ):
        return None
    return {
        "model": output.get("model"),
        "provider": output.get("provider"),
        "text": output.get("text") or "",
        "tool_calls": output.get("tool_calls") or [],
        "usage": output.get("usage") or {},
        "cost_usd": output.get("cost_usd"),
        "finish_reason": output.get("finish_reason"),
        "attempts": output.get("attempts") or [],
    }


def step_kind(kind: str, output: Any) -> str:
    """The kind a step is shown as, by the dashboard and the CLI alike: ``llm`` for a
    ``ctx.step.llm`` call (stored as a ``run`` step whose output is the checkpointed
    response), else the stored kind (``run``, ``sleep``, ``wait``, ``invoke``, ...)."""
    return "llm" if kind == "run" and llm_view(output) is not None else kind


def run_detail(run: Run, r: Redactor, trace: str | None) -> dict[str, Any]:
    out = run_summary(run, r)
    out["input"] = r.value(run.input)
    out["output"] = r.value(run.output)
    out["version"] = run.version
    out["queue_wait_s"] = (
        (run.started_at - run.created_at).total_seconds() if run.started_at else None
    )
    if trace:
        out["trace_id"], out["root_span_id"] = trace.split("-")[:2]
    origin = run.started_at or run.created_at
    end = run.ended_at.timestamp() if run.ended_at else time.time()
    starts = [s.started_at for s in run.steps if s.started_at is not None]
    t0 = min([origin.timestamp(), *(s.timestamp() for s in starts)])
    span = max(end - t0, 1e-6)
    steps = []
    for step in run.steps:
        firsts = [a.started_at.timestamp() for a in step.attempts if a.started_at is not None]
        s0 = step.started_at.timestamp() if step.started_at else None
        if firsts and s0 is not None:
            s0 = min(s0, *firsts)  # a retried step spans its failed attempts and backoffs
        s1 = step.ended_at.timestamp() if step.ended_at else None
        attempts = []
        for a in step.attempts:
            a0 = a.started_at.timestamp() if a.started_at else None
            a1 = a.ended_at.timestamp() if a.ended_at else None
            attempts.append(
                {
                    "number": a.number,
                    "started_at": a.started_at.isoformat() if a.started_at else None,
                    "duration_s": a.duration,
                    "ok": a.error_type is None,
                    "error_type": a.error_type,
                    "error_message": r.value(a.error_message),
                    "traceback": r.value(a.traceback),
                    "offset_pct": _pct(a0, t0, span),
                    "width_pct": _width(a0, a1, span),
                }
            )
        output = r.value(step.output)
        steps.append(
            {
                "id": step.id,
                "kind": step_kind(step.kind, output),
                "status": step.status,
                "started_at": step.started_at.isoformat() if step.started_at else None,
                "ended_at": step.ended_at.isoformat() if step.ended_at else None,
                "duration_s": None if s0 is None or s1 is None else s1 - s0,
                "output": output,
                "error": r.value(step.error),
                "attempts": attempts,
                "retries": sum(1 for a in attempts if not a["ok"]),
                "offset_pct": _pct(s0, t0, span),
                "width_pct": _width(s0, s1 if s1 is not None else end, span),
                "llm": llm_view(output),
            }
        )
    out["steps"] = steps
    out["timeline_s"] = span
    return out


def _pct(t: float | None, t0: float, span: float) -> float:
    return 0.0 if t is None else round(max(0.0, min(100.0, (t - t0) / span * 100)), 2)


def _width(a: float | None, b: float | None, span: float) -> float:
    if a is None or b is None:
        return 0.5
    return round(max(0.5, min(100.0, (b - a) / span * 100)), 2)


def function_stats(
    rows: list[tuple[str, str, float | None]], retries: dict[str, int], registered: list[str]
) -> list[dict[str, Any]]:
    by_fn: dict[str, list[tuple[str, float | None]]] = {f: [] for f in registered}
    for fid, status, duration in rows:
        by_fn.setdefault(fid, []).append((status, duration))
    out = []
    for fid, runs in sorted(by_fn.items()):
        done = [s for s, _ in runs if s in ("completed", "failed")]
        durations = sorted(d for s, d in runs if d is not None and s == "completed")
        out.append(
            {
                "id": fid,
                "runs": len(runs),
                "completed": sum(1 for s in done if s == "completed"),
                "failed": sum(1 for s in done if s == "failed"),
                "success_rate": (sum(1 for s in done if s == "completed") / len(done))
                if done
                else None,
                "p50_s": statistics.median(durations) if durations else None,
                "p95_s": durations[max(0, int(len(durations) * 0.95) - 1)] if durations else None,
                "retries": retries.get(fid, 0),
                "retry_rate": retries.get(fid, 0) / len(runs) if runs else None,
            }
        )
    return out

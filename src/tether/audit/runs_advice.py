"""What the run audit suggests: the dominant cause of the tax, where it sits, what to change.

Each entry is ``{"cause", "where", "text"}``; the first one is about the dominant cause.
The fixes are tether's own knobs (a fallback, a timeout, a concurrency key, a budget).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.audit.runs_model import StepFigures

if TYPE_CHECKING:
    from tether.audit.runs_audit import RunAudit

_TIMEOUTS = ("timeout", "Timeout", "deadline")


def advise(report: RunAudit) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    total = report.total
    cause = total.dominant_cause()
    if cause is not None:
        pct = _pct(total.tax_by_cause()[cause])
        out.append(_for_cause(report, cause, pct))
    out.extend(_llm_advice(report))
    for fid, fig in sorted(report.functions.items()):
        rate = fig.success_rate
        top = fig.failures.top(1)
        if rate is not None and rate < 0.95 and top:
            f = top[0]
            out.append(
                {
                    "cause": "failures",
                    "where": fid,
                    "text": f"{fid} fails {_pct(1 - rate)} of its runs; its most frequent error "
                    f"is {f['error_type']}: {f['message'][:120]!r} ({f['count']}x, e.g. run "
                    f"{f['example_run']}).",
                }
            )
    return out


def _worst_step(report: RunAudit, cause: str) -> tuple[str, str, StepFigures] | None:
    best: tuple[str, str, StepFigures] | None = None
    for fid, steps in report.steps.items():
        for sid, st in steps.items():
            if best is None or st.tax_s[cause] > best[2].tax_s[cause]:
                best = (fid, sid, st)
    return best if best is not None and best[2].tax_s[cause] > 0 else None


def _for_cause(report: RunAudit, cause: str, pct: str) -> dict[str, str]:
    head = f"{cause} is the largest part of the reliability tax ({pct} of active time)"
    worst = _worst_step(report, cause)
    where = f"{worst[0]} / {worst[1]}" if worst else "all functions"
    if cause == "recovery":
        n = report.total.takeovers
        text = (
            f"{head}: {n} run(s) were taken over after their worker was lost. Look for "
            "what kills workers (OOM kills, SIGKILL, deploys without a drain: stop workers "
            "with SIGTERM); a shorter Harness(lease_ttl=...) detects a lost worker sooner, "
            "and smaller steps lose less work."
        )
        return {"cause": cause, "where": where, "text": text}
    if cause == "provider_waits":
        model, reason = _most_waited(report)
        what = "open circuits" if reason == "circuit" else "rate limits (429 with a delay)"
        text = (
            f"{head}: calls to {model} waited on {what}. Add a fallback on another provider "
            "(fallbacks=[...]) so the call fails over instead of waiting, and cap the calls "
            "in flight with tether.Concurrency(limit=..., key=...) or tether.RateLimit on "
            "the calling function."
        )
        return {"cause": cause, "where": model, "text": text}
    if worst is None:
        return {"cause": cause, "where": where, "text": head + "."}
    fid, sid, st = worst
    top = st.failures.top(1)
    error = f"{top[0]['error_type']}: {top[0]['message'][:100]!r}" if top else "errors"
    if cause == "backoff":
        text = (
            f"{head}, most in {fid} / {sid} ({st.tax_s['backoff']:.3g}s waiting between "
            f"attempts after {error}). Shorten Retry(initial=..., max_delay=...) for it, raise "
            "RetryAfterError(seconds) to wait exactly what the server asks, or fail over to "
            "a fallback instead of waiting."
        )
    elif any(t in error for t in _TIMEOUTS):
        text = (
            f"{head}, most in {fid} / {sid}: attempts end in {error}. Bound each attempt "
            "with a shorter timeout (ctx.step.options(timeout=...) or timeout= on the LLM "
            "call) so a hung attempt fails fast, and add a fallback."
        )
    else:
        text = (
            f"{head}, most in {fid} / {sid}: {st.failed_attempts} failed attempt(s), "
            f"mostly {error}. Fix that cause, raise NonRetriableError for errors no retry "
            "can fix, or add a fallback."
        )
    return {"cause": cause, "where": f"{fid} / {sid}", "text": text}


def _most_waited(report: RunAudit) -> tuple[str, str]:
    best, best_s, reason = "(no model)", -1.0, "retry_after"
    for model, fig in report.models.by_model.items():
        waits = {k: v for k, v in fig.waits_s.items() if k != "backoff"}
        if waits and sum(waits.values()) > best_s:
            best, best_s = model, sum(waits.values())
            reason = max(waits, key=lambda k: waits[k])
    return best, reason


def _llm_advice(report: RunAudit) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    doc: dict[str, Any] = report.models.as_json()
    cost, failed = float(doc["cost_usd"]), float(doc["failed_cost_usd"])
    if cost > 0 and failed / cost >= 0.1:
        out.append(
            {
                "cause": "cost",
                "where": "llm",
                "text": f"failed LLM attempts cost ${failed:.4f}, {_pct(failed / cost)} of the "
                f"${cost:.4f} spent: cap it with max_cost_usd= per call or a run budget, and "
                "fail over sooner (max_attempts=) on models that keep failing.",
            }
        )
    if doc["context_overflows"]:
        out.append(
            {
                "cause": "context",
                "where": "llm",
                "text": f"{doc['context_overflows']} LLM attempt(s) overflowed the model's "
                "context window: build the messages through a context window with a budget "
                "(ctx.context(...)) so they are compacted before the call, or add a "
                "larger-context fallback.",
            }
        )
    return out


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"

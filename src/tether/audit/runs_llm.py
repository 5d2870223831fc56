"""LLM calls in the run audit: what one call's attempts cost, and figures per model.

A call's attempts are the ``AttemptRecord``s of its ``LLMResponse`` (a completed
``ctx.step.llm`` step) or of its ``LLMCallFailed`` (a failed one). Waits before an attempt
(``waits``) are ``backoff`` (tether's own) or provider waits: ``retry_after`` (the server's
delay), ``hold`` (a shared rate-limit hold) and ``circuit`` (an open circuit). Records
written before ``waits``/``fallback`` existed count no wait, and a fallback is then any
attempt on another model than the call's first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PROVIDER_WAITS = ("retry_after", "hold", "circuit")
OVERFLOW = "context_length_exceeded"


@dataclass
class Call:
    """What one call's attempts add to the tax and the ledger."""

    failed_s: float = 0.0  # failed attempts' own time
    backoff_s: float = 0.0
    provider_s: float = 0.0
    failed_attempts: int = 0
    attempts: int = 0
    cost_usd: float = 0.0
    failed_cost_usd: float = 0.0
    fallback: bool = False
    overflows: int = 0
    compactions: int = 0
    errors: list[tuple[str, str, float]] = field(default_factory=list)  # (class, message, at)


@dataclass
class ModelFigures:
    provider: str = ""
    calls: int = 0
    attempts: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    fallbacks_taken: int = 0
    circuit_openings: int = 0
    cost_usd: float = 0.0
    failed_cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    waits_s: dict[str, float] = field(default_factory=dict)
    context_overflows: int = 0
    compactions: int = 0

    def add(self, other: ModelFigures) -> None:
        self.calls += other.calls
        self.attempts += other.attempts
        self.failed += other.failed
        self.errors.update(other.errors)
        self.fallbacks_taken += other.fallbacks_taken
        self.circuit_openings += other.circuit_openings
        self.cost_usd += other.cost_usd
        self.failed_cost_usd += other.failed_cost_usd
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        for reason, secs in other.waits_s.items():
            self.waits_s[reason] = self.waits_s.get(reason, 0.0) + secs
        self.context_overflows += other.context_overflows
        self.compactions += other.compactions

    def as_json(self) -> dict[str, Any]:
        n = self.attempts
        return {
            "calls": self.calls,
            "attempts": n,
            "failed_attempts": self.failed,
            "error_rate": round(self.failed / n, 4) if n else None,
            "error_rate_by_class": {k: round(v / n, 4) for k, v in sorted(self.errors.items())}
            if n
            else {},
            "errors_by_class": dict(sorted(self.errors.items())),
            "fallbacks_taken": self.fallbacks_taken,
            "circuit_openings": self.circuit_openings,
            "cost_usd": round(self.cost_usd, 8),
            "failed_cost_usd": round(self.failed_cost_usd, 8),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "waits_s": {k: round(v, 6) for k, v in sorted(self.waits_s.items())},
            "context_overflows": self.context_overflows,
            "compactions": self.compactions,
        }


class Models:
    """Figures per model string (``provider:model``), bounded by the models in use."""

    def __init__(self) -> None:
        self.by_model: dict[str, ModelFigures] = {}

    def read(self, attempts: list[dict[str, Any]], ok: bool) -> Call:
        """Account one call's attempts; ``ok``: the call returned a response."""
        call = Call(attempts=len(attempts))
        first_model = attempts[0].get("model") if attempts else None
        flagged = any("fallback" in a for a in attempts)
        seen: set[str] = set()
        fell_back: set[str] = set()
        for a in attempts:
            model = str(a.get("model") or "?")
            fig = self.by_model.get(model)
            if fig is None:
                fig = self.by_model[model] = ModelFigures(provider=str(a.get("provider") or "?"))
            if model not in seen:
                seen.add(model)
                fig.calls += 1
            fig.attempts += 1
            cost = float(a.get("cost_usd") or 0.0)
            fig.cost_usd += cost
            call.cost_usd += cost
            usage = a.get("usage") or {}
            fig.input_tokens += int(usage.get("input_tokens") or 0)
            fig.output_tokens += int(usage.get("output_tokens") or 0)
            for reason, seconds in (a.get("waits") or {}).items():
                fig.waits_s[reason] = fig.waits_s.get(reason, 0.0) + float(seconds)
                if reason in PROVIDER_WAITS:
                    call.provider_s += float(seconds)
                else:
                    call.backoff_s += float(seconds)
            is_fallback = bool(a.get("fallback")) if flagged else model != first_model
            if is_fallback and model not in fell_back:
                fell_back.add(model)
                fig.fallbacks_taken += 1
                call.fallback = True
            if a.get("circuit_opened"):
                fig.circuit_openings += 1
            if a.get("action") == "compact":
                fig.compactions += 1
                call.compactions += 1
            if a.get("ok"):
                continue
            kind = str(a.get("error_class") or "unknown")
            fig.failed += 1
            fig.errors[kind] += 1
            fig.failed_cost_usd += cost
            call.failed_cost_usd += cost
            call.failed_attempts += 1
            call.failed_s += float(a.get("duration_s") or 0.0)
            if kind == OVERFLOW:
                fig.context_overflows += 1
                call.overflows += 1
            call.errors.append(
                (kind, str(a.get("error_message") or ""), float(a.get("started_at") or 0.0))
            )
        return call

    def providers(self) -> dict[str, ModelFigures]:
        out: dict[str, ModelFigures] = {}
        for fig in self.by_model.values():
            out.setdefault(fig.provider, ModelFigures(provider=fig.provider)).add(fig)
        return out

    def as_json(self) -> dict[str, Any]:
        total = ModelFigures()
        for fig in self.by_model.values():
            total.add(fig)
        return {
            "models": {m: f.as_json() for m, f in sorted(self.by_model.items())},
            "providers": {p: f.as_json() for p, f in sorted(self.providers().items())},
            "attempts": total.attempts,
            "failed_attempts": total.failed,
            "fallbacks_taken": total.fallbacks_taken,
            "circuit_openings": total.circuit_openings,
            "cost_usd": round(total.cost_usd, 8),
            "failed_cost_usd": round(total.failed_cost_usd, 8),
            "context_overflows": total.context_overflows,
            "compactions": total.compactions,
        }

"""The run audit in the terminal: rich tables, every stored string shown as plain text."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tether.audit.runs_audit import RunAudit
from tether.audit.runs_model import CAUSES


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _t(value: Any) -> Text:
    return Text("" if value is None else str(value))


def render(report: RunAudit, console: Console) -> None:
    doc = report.to_dict()
    scope = "all runs" if report.since is None else f"runs since {_when(report.since)}"
    if report.function:
        scope += f" of {report.function}"
    console.print(Text.assemble(("tether audit runs", "bold"), f": {scope}"))
    summary = Table(title="reliability", show_edge=False)
    for name in (
        "scope",
        "runs",
        "success",
        "absorbed",
        "tax",
        *CAUSES,
        "p50",
        "p95",
        "p99",
        "cost",
    ):
        summary.add_column(name, justify="left" if name == "scope" else "right")
    rows = [("(all)", doc), *((fid, fig) for fid, fig in doc["functions"].items())]
    for name, fig in rows:
        causes = [_pct(fig["tax_by_cause"][c]) for c in CAUSES]
        lat = fig["latency_s"]
        summary.add_row(
            _t(name),
            str(fig["runs"]),
            _pct(fig["success_rate"]),
            str(fig["retries_absorbed"]),
            Text(_pct(fig["reliability_tax"]), style="bold"),
            *causes,
            _secs(lat["p50"]),
            _secs(lat["p95"]),
            _secs(lat["p99"]),
            f"${fig['cost_usd']:.4f}",
        )
    console.print(summary)

    steps = Table(title="steps", show_edge=False)
    for name in (
        "function",
        "step",
        "runs",
        "success",
        "attempts",
        "absorbed",
        "tax",
        "p50",
        "p95",
        "p99",
    ):
        steps.add_column(name, justify="left" if name in ("function", "step") else "right")
    for fid, fig in doc["functions"].items():
        for sid, st in fig["steps"].items():
            lat = st["latency_s"]
            steps.add_row(
                _t(fid),
                _t(sid),
                str(st["runs"]),
                _pct(st["success_rate"]),
                str(st["attempts"]),
                str(st["retries_absorbed"]),
                _pct(st["reliability_tax"]),
                _secs(lat["p50"]),
                _secs(lat["p95"]),
                _secs(lat["p99"]),
            )
    if steps.row_count:
        console.print(steps)

    if doc["failures"]:
        failures = Table(title="failures", show_edge=False)
        for name in ("error", "message", "count", "absorbed", "source", "example run"):
            failures.add_column(name, overflow="fold")
        for f in doc["failures"]:
            failures.add_row(
                _t(f["error_type"]),
                _t(f["message"]),
                str(f["count"]),
                str(f["absorbed"]),
                f["source"],
                _t(f["example_run"]),
            )
        console.print(failures)

    llm = doc["llm"]
    if llm["models"]:
        models = Table(title="LLM models", show_edge=False)
        for name in (
            "model",
            "calls",
            "attempts",
            "error rate",
            "errors by class",
            "fallbacks",
            "circuit opened",
            "cost",
            "failed cost",
        ):
            models.add_column(
                name, justify="left" if name in ("model", "errors by class") else "right"
            )
        for model, m in llm["models"].items():
            models.add_row(
                _t(model),
                str(m["calls"]),
                str(m["attempts"]),
                _pct(m["error_rate"]),
                _t(", ".join(f"{k} {_pct(v)}" for k, v in m["error_rate_by_class"].items())),
                str(m["fallbacks_taken"]),
                str(m["circuit_openings"]),
                f"${m['cost_usd']:.4f}",
                f"${m['failed_cost_usd']:.4f}",
            )
        console.print(models)
    ctx = doc["context"]
    console.print(
        Text(
            f"context: {ctx['context_overflows']} overflow(s), {ctx['compactions']} compaction(s)"
            f" ({ctx['windows']}); queue time p50 {_secs(doc['queue_s']['p50'])}, "
            f"total {_secs(doc['queue_s']['total'])} (not part of the tax)"
        )
    )
    for item in doc["advice"]:
        console.print(
            Text.assemble(
                ("advice ", "bold yellow"), (f"[{item['cause']}] ", "yellow"), item["text"]
            )
        )


def _when(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")

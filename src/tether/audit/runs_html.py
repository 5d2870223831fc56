"""The run audit as one self-contained HTML file: inline SVG charts (tax by cause, errors
over time, latency) and the tables, no script, no stylesheet or font from elsewhere.

``body(doc)`` is the report without the page around it: the dashboard's ``/audit`` page
shows the same. Every string from the store is escaped (and passes ``clean``, the
dashboard's redactor, when given).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tether.audit.runs_model import CAUSES

COLOURS = {
    "failed_attempts": "#d9534f",
    "backoff": "#f0ad4e",
    "recovery": "#8e44ad",
    "provider_waits": "#3b7dd8",
}
PALETTE = ["#3b7dd8", "#d9534f", "#2e9e5b", "#f0ad4e", "#8e44ad", "#16a2b8", "#7f8c8d"]
STYLE = """
.tether-audit{font:14px/1.45 system-ui,sans-serif;color:#1d2430}
.tether-audit table{border-collapse:collapse;margin:8px 0 18px;background:#fff}
.tether-audit th,.tether-audit td{padding:4px 8px;border-bottom:1px solid #e3e6ea;text-align:left}
.tether-audit th{background:#eef1f4}.tether-audit td.n{text-align:right}
.tether-audit .advice{background:#fff7e0;padding:6px 10px;margin:6px 0;border-left:3px solid #f0ad4e}
.tether-audit svg{background:#fff;margin:6px 0 14px}.tether-audit .muted{color:#6b7785}
"""


def _e(value: Any, clean: Callable[[str], str] | None = None) -> str:
    text = "" if value is None else str(value)
    return html.escape(clean(text) if clean else text)


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f}%"


def _secs(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def tax_chart(doc: dict[str, Any]) -> str:
    """One stacked bar per function (and the whole store): each cause's share of active time."""
    rows = [("(all)", doc), *doc["functions"].items()]
    width, label, bar_h, gap = 760, 170, 18, 8
    height = 30 + len(rows) * (bar_h + gap) + 24
    scale = (width - label - 70) / 1.0
    parts = [
        f'<svg id="tax-chart" role="img" aria-label="reliability tax by cause" width="{width}" height="{height}">'
    ]
    parts.append(
        '<text x="0" y="16" font-weight="600">Reliability tax by cause (share of active time)</text>'
    )
    for i, (name, fig) in enumerate(rows):
        y = 30 + i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{_e(name)[:28]}</text>')
        x = float(label)
        for cause in CAUSES:
            w = fig["tax_by_cause"][cause] * scale
            if w > 0:
                parts.append(
                    f'<rect class="cause-{cause}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                    f'fill="{COLOURS[cause]}"><title>{cause}: {_pct(fig["tax_by_cause"][cause])}</title></rect>'
                )
                x += w
        parts.append(
            f'<text x="{x + 6:.1f}" y="{y + 13}" font-size="12">{_pct(fig["reliability_tax"])}</text>'
        )
    y = height - 8
    x = float(label)
    for cause in CAUSES:
        parts.append(f'<rect x="{x}" y="{y - 10}" width="10" height="10" fill="{COLOURS[cause]}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}" font-size="12">{cause}</text>')
        x += 130
    parts.append("</svg>")
    return "".join(parts)


def errors_chart(doc: dict[str, Any]) -> str:
    """Failed attempts per time bucket, stacked by function."""
    series = doc["errors_over_time"]
    width, height, left, bottom = 760, 220, 40, 30
    parts = [
        f'<svg id="errors-chart" role="img" aria-label="failed attempts over time" width="{width}" height="{height}">'
    ]
    parts.append('<text x="0" y="16" font-weight="600">Failed attempts over time</text>')
    if not series:
        parts.append('<text x="40" y="110" class="muted">no failed attempts</text></svg>')
        return "".join(parts)
    functions = sorted({f for point in series for f in point["failed_attempts"]})
    colour = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(functions)}
    peak = max(sum(p["failed_attempts"].values()) for p in series) or 1
    t0, t1 = series[0]["at"], series[-1]["at"]
    span = max(t1 - t0, 1.0)
    plot_w, plot_h = width - left - 10, height - bottom - 30
    bar_w = max(2.0, plot_w / max(len(series), 1) * 0.8)
    for point in series:
        x = left + (point["at"] - t0) / span * (plot_w - bar_w)
        y = 30 + plot_h
        for f in functions:
            n = point["failed_attempts"].get(f, 0)
            if n:
                h = n / peak * plot_h
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour[f]}">'
                    f"<title>{_e(f)}: {n} at {_when(point['at'])}</title></rect>"
                )
    parts.append(f'<text x="0" y="40" font-size="11">{peak}</text>')
    parts.append(f'<text x="{left}" y="{height - 12}" font-size="11">{_when(t0)}</text>')
    parts.append(f'<text x="{width - 170}" y="{height - 12}" font-size="11">{_when(t1)}</text>')
    x = left + 200
    for f in functions[:6]:
        parts.append(f'<rect x="{x}" y="{height - 22}" width="10" height="10" fill="{colour[f]}"/>')
        parts.append(f'<text x="{x + 14}" y="{height - 12}" font-size="11">{_e(f)[:18]}</text>')
        x += 110
    parts.append("</svg>")
    return "".join(parts)


def latency_chart(doc: dict[str, Any]) -> str:
    """p50 / p95 / p99 of each function's active time, as grouped bars (log-free, to scale)."""
    rows = [
        (fid, fig["latency_s"])
        for fid, fig in doc["functions"].items()
        if fig["latency_s"]["p50"] is not None
    ]
    width, label, bar_h = 760, 170, 8
    height = 30 + len(rows) * (3 * bar_h + 12) + 10
    parts = [
        f'<svg id="latency-chart" role="img" aria-label="latency" width="{width}" height="{max(height, 60)}">'
    ]
    parts.append(
        '<text x="0" y="16" font-weight="600">Latency per function (active time: p50, p95, p99)</text>'
    )
    peak = max((lat["p99"] or 0.0 for _, lat in rows), default=0.0) or 1.0
    scale = (width - label - 80) / peak
    for i, (fid, lat) in enumerate(rows):
        y = 30 + i * (3 * bar_h + 12)
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{_e(fid)[:28]}</text>')
        for j, (q, shade) in enumerate(
            (("p50", "#9cc0ee"), ("p95", "#5b93dd"), ("p99", "#2a5ea8"))
        ):
            v = lat[q] or 0.0
            parts.append(
                f'<rect x="{label}" y="{y + j * bar_h}" width="{v * scale:.1f}" height="{bar_h - 1}" fill="{shade}">'
                f"<title>{q} {_secs(v)}</title></rect>"
            )
            parts.append(
                f'<text x="{label + v * scale + 4:.1f}" y="{y + j * bar_h + 8}" font-size="10">{q} {_secs(v)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def body(doc: dict[str, Any], clean: Callable[[str], str] | None = None) -> str:
    """The report (charts and tables) as an HTML fragment."""
    out = [f"<style>{STYLE}</style>", '<div class="tether-audit">']
    scope = doc["scope"]
    since = "all runs" if scope["since"] is None else f"runs since {_when(scope['since'])}"
    out.append(
        f"<p class='muted'>{_e(since)}{' of ' + _e(scope['function']) if scope['function'] else ''}; "
        f"generated {_when(scope['until'])}. The reliability tax is the share of active time "
        "(first start to end, minus durable sleeps and waits) lost to failed attempts, "
        "backoff, recovery after lost workers and provider waits.</p>"
    )
    out.append(
        f"<p id='headline'><b>{doc['runs']}</b> runs, success {_pct(doc['success_rate'])}, "
        f"<b>{doc['retries_absorbed']}</b> retries absorbed, reliability tax "
        f"<b>{_pct(doc['reliability_tax'])}</b>"
        + (f" (dominant: {_e(doc['dominant_cause'])})" if doc["dominant_cause"] else "")
        + f", cost ${doc['cost_usd']:.4f} (failed attempts ${doc['failed_cost_usd']:.4f}).</p>"
    )
    for item in doc["advice"]:
        out.append(
            f"<div class='advice'><b>{_e(item['cause'])}</b> ({_e(item['where'], clean)}): {_e(item['text'], clean)}</div>"
        )
    out.append(tax_chart(doc))
    out.append(errors_chart(doc))
    out.append(latency_chart(doc))
    out.append(
        "<h3>Functions</h3><table id='audit-functions'><tr><th>function</th><th>runs</th><th>success</th>"
        "<th>absorbed</th><th>tax</th>"
        + "".join(f"<th>{c}</th>" for c in CAUSES)
        + "<th>p50</th><th>p95</th><th>p99</th><th>cost</th></tr>"
    )
    for fid, f in doc["functions"].items():
        lat = f["latency_s"]
        out.append(
            f"<tr><td>{_e(fid)}</td><td class='n'>{f['runs']}</td><td class='n'>{_pct(f['success_rate'])}</td>"
            f"<td class='n'>{f['retries_absorbed']}</td><td class='n'><b>{_pct(f['reliability_tax'])}</b></td>"
            + "".join(f"<td class='n'>{_pct(f['tax_by_cause'][c])}</td>" for c in CAUSES)
            + f"<td class='n'>{_secs(lat['p50'])}</td><td class='n'>{_secs(lat['p95'])}</td>"
            f"<td class='n'>{_secs(lat['p99'])}</td><td class='n'>${f['cost_usd']:.4f}</td></tr>"
        )
    out.append(
        "</table><h3>Steps</h3><table id='audit-steps'><tr><th>function</th><th>step</th><th>runs</th>"
        "<th>success</th><th>attempts</th><th>absorbed</th><th>tax</th><th>p50</th><th>p95</th><th>p99</th></tr>"
    )
    for fid, f in doc["functions"].items():
        for sid, st in f["steps"].items():
            lat = st["latency_s"]
            out.append(
                f"<tr><td>{_e(fid)}</td><td>{_e(sid)}</td><td class='n'>{st['runs']}</td>"
                f"<td class='n'>{_pct(st['success_rate'])}</td><td class='n'>{st['attempts']}</td>"
                f"<td class='n'>{st['retries_absorbed']}</td><td class='n'>{_pct(st['reliability_tax'])}</td>"
                f"<td class='n'>{_secs(lat['p50'])}</td><td class='n'>{_secs(lat['p95'])}</td><td class='n'>{_secs(lat['p99'])}</td></tr>"
            )
    out.append(
        "</table><h3>Failures</h3><table id='audit-failures'><tr><th>error</th><th>message</th>"
        "<th>count</th><th>absorbed</th><th>source</th><th>example run</th></tr>"
    )
    for item in doc["failures"]:
        out.append(
            f"<tr><td>{_e(item['error_type'])}</td><td>{_e(item['message'], clean)}</td><td class='n'>{item['count']}</td>"
            f"<td class='n'>{item['absorbed']}</td><td>{_e(item['source'])}</td><td>{_e(item['example_run'])}</td></tr>"
        )
    out.append(
        "</table><h3>LLM models</h3><table id='audit-models'><tr><th>model</th><th>calls</th><th>attempts</th>"
        "<th>error rate</th><th>by class</th><th>fallbacks taken</th><th>circuit openings</th><th>cost</th><th>failed cost</th></tr>"
    )
    for model, m in doc["llm"]["models"].items():
        classes = ", ".join(f"{k} {_pct(v)}" for k, v in m["error_rate_by_class"].items())
        out.append(
            f"<tr><td>{_e(model, clean)}</td><td class='n'>{m['calls']}</td><td class='n'>{m['attempts']}</td>"
            f"<td class='n'>{_pct(m['error_rate'])}</td><td>{_e(classes)}</td><td class='n'>{m['fallbacks_taken']}</td>"
            f"<td class='n'>{m['circuit_openings']}</td><td class='n'>${m['cost_usd']:.4f}</td><td class='n'>${m['failed_cost_usd']:.4f}</td></tr>"
        )
    ctx = doc["context"]
    out.append(
        f"</table><p>Context: {ctx['context_overflows']} overflow(s), {ctx['compactions']} compaction(s) "
        f"({_e(ctx['windows'])}). Queue time (not part of the tax): p50 {_secs(doc['queue_s']['p50'])}, "
        f"total {_secs(doc['queue_s']['total'])}.</p></div>"
    )
    return "".join(out)


def page(doc: dict[str, Any], clean: Callable[[str], str] | None = None) -> str:
    """A whole HTML document, readable offline."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>tether audit runs</title></head><body style='margin:16px 20px;background:#f6f7f9'>"
        "<h2 style='font-family:system-ui,sans-serif'>tether audit runs</h2>"
        + body(doc, clean)
        + "</body></html>\n"
    )


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")

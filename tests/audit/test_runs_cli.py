"""``tether audit runs``: terminal tables, ``--json``, ``--html FILE``, ``--since`` and
``--function``; the quantile sketch's stated error; the bench's store read in full."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether import audit
from tether.audit.sketch import LogSketch
from tether.cli import app

runner = CliRunner()
HOSTILE = "[bold red]boom[/] <script>alert(1)</script>"
TOP = {"runs", "success_rate", "retries_absorbed", "failures", "reliability_tax", "tax_by_cause"}


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    th = tether.Harness(url, clock=tether.VirtualClock())
    seen: list[int] = []

    def flaky() -> str:
        seen.append(1)
        if len(seen) % 2:
            raise ConnectionError(HOSTILE)
        return "ok"

    @th.function(id="ingest", retries=tether.Retry(max_attempts=3, initial=0.2, jitter=False))
    def ingest(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run(HOSTILE, flaky))

    @th.function(id="other")
    def other(ctx: tether.SyncContext) -> int:
        return int(ctx.step.run("one", lambda: 1))

    for _ in range(3):
        th.run(ingest)
    th.run(other)
    th.close()
    return url


def test_json_carries_the_documented_fields(tmp_path: Path) -> None:
    url = _store(tmp_path)
    result = runner.invoke(app, ["audit", "runs", "--store", url, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) >= TOP
    assert set(doc["tax_by_cause"]) == {"failed_attempts", "backoff", "recovery", "provider_waits"}
    assert set(doc["functions"]["ingest"]) >= TOP
    failure = doc["failures"][0]
    assert set(failure) >= {"error_type", "message", "count", "example_run"}
    assert failure["message"] == HOSTILE and failure["count"] == 3
    assert doc["retries_absorbed"] == 3 and doc["runs"] == 4

    only = json.loads(
        runner.invoke(app, ["audit", "runs", "-s", url, "--json", "--function", "other"]).stdout
    )
    assert set(only["functions"]) == {"other"} and only["failures"] == []
    recent = json.loads(
        runner.invoke(app, ["audit", "runs", "-s", url, "--json", "--since", "7d"]).stdout
    )
    assert recent["runs"] == 4


def test_text_tables_print_stored_strings_as_written(tmp_path: Path) -> None:
    url = _store(tmp_path)
    result = runner.invoke(app, ["audit", "runs", "--store", url], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in ("reliability", "steps", "failures", "advice"):
        assert title in out
    assert "[bold red]boom[/]" in out  # shown, not interpreted as markup
    assert "ingest" in out and "failed_attempts" in out


def test_html_report_is_self_contained_with_three_charts(tmp_path: Path) -> None:
    url = _store(tmp_path)
    target = tmp_path / "report.html"
    result = runner.invoke(app, ["audit", "runs", "--store", url, "--html", str(target)])
    assert result.exit_code == 0, result.output
    page = target.read_text()
    for chart in ("tax-chart", "errors-chart", "latency-chart"):
        assert f'id="{chart}"' in page
    assert "<script" not in page  # the hostile message is escaped, and no script is loaded
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)  # nothing fetched
    assert page.count("<rect") > 3


def test_bad_since_and_unknown_function_exit_2_with_the_reason(tmp_path: Path) -> None:
    url = _store(tmp_path)
    bad = runner.invoke(app, ["audit", "runs", "-s", url, "--since", "a while"])
    assert bad.exit_code == 2 and "since" in bad.output
    missing = runner.invoke(app, ["audit", "runs", "-s", url, "--function", "nope"])
    assert missing.exit_code == 2 and "'nope' has no runs" in missing.output


def test_sketch_quantiles_are_within_one_percent() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(0, 2) for _ in range(20_000)] + [0.0] * 50
    sketch = LogSketch(0.01)
    sketch.add_all(values)
    exact = sorted(values)
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        want = exact[int(q * (len(exact) - 1))]
        assert sketch.summary()[name] == pytest.approx(want, rel=0.0101)
    assert sketch.summary()["mean"] == pytest.approx(sum(values) / len(values), rel=1e-6)
    assert len(sketch.bins) <= 2048


def test_the_bench_store_is_read_whole_and_consistently(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    try:
        import audit as bench  # bench/audit.py
    finally:
        sys.path.pop(0)
    path = tmp_path / "bench.db"
    counts = bench.build_sqlite(path, 5_000)
    th = tether.Harness(f"sqlite:///{path}")
    doc = audit.runs(th).to_dict()
    th.close()
    assert doc["runs"] == counts["runs"]
    assert doc["attempts"] == counts["attempts"]
    assert doc["failed_attempts"] == counts["attempt_rows"]
    assert doc["llm_attempts"] == counts["llm_attempts"]
    conn = sqlite3.connect(path)
    (failed_s,) = conn.execute("SELECT sum(ended_at - started_at) FROM attempts").fetchone()
    llm_failed = sum(
        a["duration_s"]
        for (out,) in conn.execute("SELECT output FROM steps WHERE step_id = 'classify'")
        for a in json.loads(out)["attempts"]
        if not a["ok"]
    )
    conn.close()
    assert doc["tax_seconds"]["failed_attempts"] == pytest.approx(failed_s + llm_failed, rel=1e-6)
    assert 0 < doc["reliability_tax"] < 1

"""JUnit XML for CI: one ``<testsuite>`` per experiment, one ``<testcase>`` per (case, scorer).

A test case fails when the case did not pass that scorer in every repeat (the message lists
each repeat's value), errors when the task failed, and is skipped when the scorer could not
score the case in any repeat. Test cases are streamed to a temporary file while counting,
so the report of a large experiment is written without holding it in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from xml.sax.saxutils import quoteattr

if TYPE_CHECKING:
    from tether.evals.results import CaseResult, EvalResult


def _testcase(group: list[CaseResult], scorer: str, suite: str, out: TextIO) -> str:
    """Write one testcase; return its outcome: pass, failure, error or skipped."""
    case = group[0].case
    scores = [entry.scores[scorer] for entry in group]
    latency = sum(e.latency_s or 0.0 for e in group)
    out.write(
        f"    <testcase classname={quoteattr(suite + '.' + scorer)} name={quoteattr(case.id)} "
        f'time="{latency:.3f}">\n'
    )
    outcome = "pass"
    errors = [e for e in group if e.status == "error"]
    if errors:
        outcome = "error"
        err = errors[0].error or {}
        msg = f"{err.get('type')}: {err.get('message')} (run {errors[0].run_id})"
        out.write(f"      <error message={quoteattr(msg[:500])}/>\n")
    elif all(s.value is None for s in scores):
        outcome = "skipped"
        out.write(f"      <skipped message={quoteattr((scores[0].error or '')[:500])}/>\n")
    elif not all(s.passed for s in scores if s.value is not None):
        outcome = "failure"
        values = ", ".join("-" if s.value is None else f"{s.value:.3f}" for s in scores)
        reasons = "; ".join(s.reason for s in scores if s.reason and not s.passed)
        msg = f"{scorer} per repeat: {values}" + (f" ({reasons})" if reasons else "")
        out.write(
            f"      <failure message={quoteattr(msg[:500])}>{_text(reasons)} "
            f"run {group[0].run_id}</failure>\n"
        )
    out.write("    </testcase>\n")
    return outcome


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:2000]


def write_junit(results: Sequence[EvalResult], path: str | Path) -> None:
    """Write the JUnit XML report of ``results`` to ``path``."""
    with Path(path).open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n')
        for result in results:
            counts = {"pass": 0, "failure": 0, "error": 0, "skipped": 0}
            with tempfile.TemporaryFile("w+", encoding="utf-8") as body:
                group: list[CaseResult] = []
                for entry in result.cases:
                    group.append(entry)
                    if len(group) == result.repeat:
                        for scorer in result.scorers:
                            counts[_testcase(group, scorer, result.name, body)] += 1
                        group = []
                total = sum(counts.values())
                f.write(
                    f'  <testsuite name={quoteattr(result.experiment)} tests="{total}" '
                    f'failures="{counts["failure"]}" errors="{counts["error"]}" '
                    f'skipped="{counts["skipped"]}">\n'
                )
                body.seek(0)
                while chunk := body.read(1 << 16):
                    f.write(chunk)
            f.write("  </testsuite>\n")
        f.write("</testsuites>\n")


__all__ = ["write_junit"]

"""``tether eval APP``: the CI gate over the suites an app defines (exit codes, thresholds,
baselines, JSON and JUnit output), on real store files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether import evals
from tether.cli import app

APP = """
import os
import tether
from tether import evals

th = tether.Harness()

@th.function()
def label(ctx: tether.SyncContext) -> str:
    text = ctx.event.data["text"]
    if os.environ.get("EVAL_WORSE") and "refund" in text:
        return "other"
    return "billing" if "refund" in text or "invoice" in text else "other"

cases = evals.Dataset([
    evals.Case({"text": "refund please"}, "billing", id="refund"),
    evals.Case({"text": "my invoice"}, "billing", id="invoice"),
    evals.Case({"text": "hello"}, "other", id="hello"),
    evals.Case({"text": "lost invoice"}, "other", id="tricky"),
])

good = evals.Suite("good", task=lambda text: text.upper(), dataset=[evals.Case("a", "A", id="a")],
                   scorers=[evals.exact()], threshold=1.0)
weak = evals.Suite("weak", task=label, dataset=cases, scorers=[evals.exact(), evals.regex("i")],
                   threshold=0.9)
"""


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evalapp.py").write_text(textwrap.dedent(APP))
    monkeypatch.setenv("TETHER_STORE", f"sqlite:///{tmp_path / 'eval.db'}")
    monkeypatch.delenv("EVAL_WORSE", raising=False)
    return CliRunner()


def test_exit_zero_at_or_above_the_threshold_and_one_below(runner: CliRunner) -> None:
    ok = runner.invoke(app, ["eval", "evalapp.py", "--suite", "good"])
    assert ok.exit_code == 0, ok.output
    assert "exact" in ok.output and "1.000" in ok.output
    both = runner.invoke(app, ["eval", "evalapp.py"])
    assert both.exit_code == 1, both.output
    assert "below threshold" in both.output and "exact: mean 0.750 < threshold 0.9" in both.output
    # the command line's threshold replaces the suite's, for every scorer or for one
    assert runner.invoke(app, ["eval", "evalapp.py", "--threshold", "0.7"]).exit_code == 0
    per_scorer = ["eval", "evalapp.py", "--suite", "weak", "--threshold", "exact=0.8"]
    assert runner.invoke(app, per_scorer).exit_code == 1
    relaxed = ["eval", "evalapp.py", "--suite", "weak", "--threshold", "exact=0.7"]
    assert runner.invoke(app, relaxed).exit_code == 0


def test_bad_input_exits_two_and_stores_nothing(runner: CliRunner, tmp_path: Path) -> None:
    cases = [
        (["--threshold", "1.5"], "between 0 and 1"),
        (["--threshold", "exact=high"], "is not a number"),
        (["--threshold", "nope=0.5"], "unknown scorer 'nope'"),
        (["--suite", "missing"], "no suite named 'missing'"),
        (["--experiment", "x"], "pick the suite with --suite"),
        (["--repeat", "0"], "--repeat must be >= 1"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["eval", "evalapp.py", *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in " ".join(result.output.split()), (extra, result.output)
    th = tether.Harness(f"sqlite:///{tmp_path / 'eval.db'}")
    assert th.list_runs() == [] and evals.list_experiments(th) == []
    th.close()
    (tmp_path / "empty.py").write_text("import tether\nth = tether.Harness()\n")
    result = runner.invoke(app, ["eval", "empty.py"])
    assert result.exit_code == 2 and "defines no evals.Suite" in result.output


def test_json_and_junit_reports(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["eval", "evalapp.py", "--suite", "weak", "--json", "--junit", "report.xml"]
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    [suite] = report["suites"]
    assert report["passed"] is False and suite["passed"] is False
    assert suite["summary"]["exact"]["mean"] == 0.75 and suite["summary"]["exact"]["n"] == 4
    assert suite["thresholds"] == {"*": 0.9} and suite["below"]
    root = ET.parse(tmp_path / "report.xml").getroot()
    [testsuite] = root.findall("testsuite")
    cases = testsuite.findall("testcase")
    assert len(cases) == 8 and testsuite.get("tests") == "8"  # 4 cases x 2 scorers
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("weak.exact", "tricky"), ("weak.regex", "hello")}
    assert testsuite.get("failures") == "2" and testsuite.get("errors") == "0"


def test_a_regression_against_the_baseline_fails_the_gate(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["eval", "evalapp.py", "--suite", "weak", "--threshold", "0.5"]
    assert runner.invoke(app, [*base, "--experiment", "main"]).exit_code == 0
    same = runner.invoke(app, [*base, "--experiment", "same", "--baseline", "main"])
    assert same.exit_code == 0, same.output
    assert "0 regressions" in same.output
    monkeypatch.setenv("EVAL_WORSE", "1")
    worse = runner.invoke(app, [*base, "--experiment", "pr", "--baseline", "main", "--fresh"])
    assert worse.exit_code == 1, worse.output
    assert "regression case refund exact: 1.000 -> 0.000" in worse.output


def test_the_real_command_exits_with_the_gate(tmp_path: Path) -> None:
    (tmp_path / "evalapp.py").write_text(textwrap.dedent(APP))
    env = dict(os.environ, TETHER_STORE=f"sqlite:///{tmp_path / 'eval.db'}")
    env.pop("EVAL_WORSE", None)
    cmd = [sys.executable, "-m", "tether.cli", "eval", "evalapp.py"]
    ok = subprocess.run([*cmd, "--suite", "good"], cwd=tmp_path, env=env, capture_output=True)
    assert ok.returncode == 0, ok.stderr.decode()
    low = subprocess.run([*cmd, "--suite", "weak"], cwd=tmp_path, env=env, capture_output=True)
    assert low.returncode == 1, low.stderr.decode()


BROKEN = """
from tether import evals

def answer(text):
    if text == "boom":
        raise RuntimeError("the model is down")
    return text.upper()

def picky(case, output):
    if case.id == "b":
        raise ValueError("cannot score b")
    return 1.0

broken = evals.Suite("broken", task=answer, scorers=[picky],
                     dataset=[evals.Case("a", id="a"), evals.Case("b", id="b"),
                              evals.Case("boom", id="boom")])
"""


def test_junit_errors_and_skips_and_a_file_without_a_harness(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "broken.py").write_text(textwrap.dedent(BROKEN))  # no Harness: a default one
    result = runner.invoke(app, ["eval", "broken.py", "--junit", "broken.xml"])
    assert result.exit_code == 0, result.output  # no threshold, no baseline: a report
    [testsuite] = ET.parse(tmp_path / "broken.xml").getroot().findall("testsuite")
    assert (testsuite.get("tests"), testsuite.get("errors"), testsuite.get("skipped")) == (
        "3",
        "1",
        "1",
    )
    outcome = {c.get("name"): [child.tag for child in c] for c in testsuite.findall("testcase")}
    assert outcome == {"a": [], "b": ["skipped"], "boom": ["error"]}
    error = testsuite.find("testcase[@name='boom']/error")
    assert error is not None and "RuntimeError: the model is down" in str(error.get("message"))

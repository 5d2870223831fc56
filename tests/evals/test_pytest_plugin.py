"""The pytest plugin: its entry point, and the ``tether_eval`` fixture in a real pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TESTS = """
from tether import evals

CASES = [evals.Case("refund", "billing", id="r"), evals.Case("hi", "other", id="h")]

def label(text):
    return "billing" if text == "refund" else "billing"

def test_passes(tether_eval):
    result = tether_eval.run("ok", task=lambda t: "billing", dataset=CASES[:1],
                             scorers=[evals.exact()])
    tether_eval.assert_experiment(result, min_mean=1.0)

def test_fails_with_the_failing_case(tether_eval):
    result = tether_eval.run("bad", task=label, dataset=CASES, scorers=[evals.exact()])
    tether_eval.assert_experiment(result, min_mean=0.9)
"""


def test_the_entry_point_is_declared() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    plugins = meta["project"]["entry-points"]["pytest11"]
    assert plugins["tether"] == "tether.evals.pytest_plugin"


def test_the_fixture_runs_an_experiment_and_asserts_on_it(tmp_path: Path) -> None:
    (tmp_path / "test_quality.py").write_text(textwrap.dedent(TESTS))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tether.evals.pytest_plugin",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_quality.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # only this plugin
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "exact: mean 0.500 < threshold 0.9" in out
    assert "case h (repeat 0, run eval-" in out  # the failing case, with its run

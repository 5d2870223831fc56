"""A pytest plugin (entry point ``tether``): the ``tether_eval`` fixture.

It only adds a fixture, so it does nothing unless a test asks for it::

    def test_triage_quality(tether_eval):
        result = tether_eval.run("triage", task=classify, dataset=cases, scorers=[evals.exact()])
        tether_eval.assert_experiment(result, min_mean=0.9)

``run`` uses a harness on a fresh SQLite file under the test's ``tmp_path`` unless given
``th=`` (a task registered on your own harness needs it). ``assert_experiment`` raises an
``AssertionError`` that names each missed expectation and the first failing cases with
their run ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tether.evals.results import EvalResult
    from tether.harness import Harness


class EvalHelper:
    """What the ``tether_eval`` fixture gives a test."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._harness: Harness | None = None

    @property
    def harness(self) -> Harness:
        """A harness on a fresh SQLite file for this test (created on first use)."""
        if self._harness is None:
            from tether.harness import Harness

            self._harness = Harness(f"sqlite:///{self._folder / 'evals.db'}")
        return self._harness

    def run(self, name: str, *, th: Harness | None = None, **options: Any) -> EvalResult:
        """``evals.run`` on ``th`` (default: this test's harness), without a progress bar."""
        from tether.evals import run

        options.setdefault("progress", False)
        return run(th or self.harness, name, **options)

    def assert_experiment(self, result: EvalResult, **expectations: Any) -> None:
        """``evals.assert_experiment``: ``min_mean``, ``min_pass_rate``, ``max_unscored``,
        ``max_errors``, ``baseline``."""
        from tether.evals import assert_experiment

        assert_experiment(result, **expectations)

    def close(self) -> None:
        if self._harness is not None:
            self._harness.close()
            self._harness = None


@pytest.fixture
def tether_eval(tmp_path: Path) -> Iterator[EvalHelper]:
    """Run an evaluation in a test and assert on its result."""
    helper = EvalHelper(tmp_path)
    yield helper
    helper.close()

"""``evals.Suite`` (what ``tether eval`` runs), thresholds, and assertions for tests.

A threshold is the minimum ``mean`` a scorer must reach: one number for every scorer, or a
``{scorer: number}`` mapping for some. A scorer whose mean is None (nothing scored) is below
any threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import ConfigurationError
from tether.evals.dataset import Case, Dataset
from tether.evals.scores import check_threshold

if TYPE_CHECKING:
    from tether.evals.compare import Comparison
    from tether.evals.results import EvalResult
    from tether.harness import Harness

Threshold = float | Mapping[str, float] | None


def check_thresholds(
    threshold: Threshold, scorers: Sequence[str] | None = None
) -> dict[str, float]:
    """``{"*": x}`` for one number, the mapping itself otherwise; every value in 0..1 and,
    when ``scorers`` is given, every name one of them."""
    if threshold is None:
        return {}
    if isinstance(threshold, Mapping):
        out = {}
        for name, value in threshold.items():
            if scorers is not None and name != "*" and name not in scorers:
                raise ConfigurationError(
                    f"threshold for unknown scorer {name!r}; the scorers are {list(scorers)}"
                )
            out[str(name)] = check_threshold(value, f"the threshold of {name!r}")
        return out
    return {"*": check_threshold(threshold, "the threshold")}


def below(result: EvalResult, thresholds: Mapping[str, float]) -> list[str]:
    """One line per scorer under its threshold (empty: the result passes)."""
    problems = []
    for name, summary in result.summary.items():
        limit = thresholds.get(name, thresholds.get("*"))
        if limit is None:
            continue
        if summary.mean is None:
            problems.append(f"{name}: nothing scored ({summary.unscored} unscored), needs {limit}")
        elif summary.mean < limit:
            problems.append(f"{name}: mean {summary.mean:.3f} < threshold {limit}")
    return problems


@dataclass
class Suite:
    """An evaluation ``tether eval APP`` finds at module level and runs: ``name``, the
    ``task`` (a registered function or a callable), the ``dataset`` (a Dataset, a list of
    cases, or a .jsonl/.csv path), the ``scorers`` and a ``threshold`` (see module docs)."""

    name: str
    task: Any
    dataset: Any
    scorers: Sequence[Any]
    threshold: Threshold = None
    repeat: int = 1
    concurrency: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"a Suite needs a name, got {self.name!r}")
        if self.task is None or not (callable(self.task) or isinstance(self.task, str)):
            raise ConfigurationError(
                f"Suite {self.name!r}: task= must be a registered function, its id or a "
                f"callable, got {self.task!r}"
            )
        check_thresholds(self.threshold)

    def load_dataset(self) -> Dataset:
        data = self.dataset
        if isinstance(data, Dataset):
            return data
        if isinstance(data, str) or hasattr(data, "__fspath__"):
            return Dataset.from_file(data)
        if isinstance(data, Sequence):
            return Dataset(list(data))
        raise ConfigurationError(
            f"Suite {self.name!r}: dataset= must be a Dataset, a list of cases or a file path"
        )

    def run(
        self,
        th: Harness,
        *,
        experiment: str | None = None,
        repeat: int | None = None,
        fresh: bool = False,
        progress: bool | None = None,
    ) -> EvalResult:
        from tether.evals.runner import run

        return run(
            th,
            self.name,
            task=self.task,
            dataset=self.load_dataset(),
            scorers=self.scorers,
            repeat=repeat or self.repeat,
            concurrency=self.concurrency,
            experiment=experiment,
            fresh=fresh,
            progress=progress,
        )


def assert_experiment(
    result: EvalResult,
    *,
    min_mean: Threshold = None,
    min_pass_rate: Threshold = None,
    max_unscored: int | None = 0,
    max_errors: int | None = 0,
    baseline: Comparison | None = None,
) -> None:
    """Raise ``AssertionError`` (for pytest) naming each failed expectation and the first
    failing cases: a scorer's mean or pass rate under its minimum, unscored results or
    failed tasks over their maximum, or regressions in ``baseline`` (``evals.compare``)."""
    problems = below(result, check_thresholds(min_mean, result.scorers))
    rates = check_thresholds(min_pass_rate, result.scorers)
    for name, summary in result.summary.items():
        limit = rates.get(name, rates.get("*"))
        if limit is not None and (summary.pass_rate is None or summary.pass_rate < limit):
            problems.append(f"{name}: pass rate {summary.pass_rate} < {limit}")
        if max_unscored is not None and summary.unscored > max_unscored:
            problems.append(f"{name}: {summary.unscored} unscored results (max {max_unscored})")
    if max_errors is not None and result.errors > max_errors:
        problems.append(f"{result.errors} cases whose task failed (max {max_errors})")
    if not result.finished:
        problems.append(f"only {result.completed} of {result.results} results are recorded")
    if baseline is not None and baseline.regressions:
        worst = ", ".join(
            f"{c.case}/{c.scorer} {c.baseline:.2f}->{c.value:.2f}" for c in baseline.regressions[:5]
        )
        problems.append(
            f"{len(baseline.regressions)} regressions against {baseline.baseline}: {worst}"
        )
    if problems:
        raise AssertionError(
            f"experiment {result.experiment!r}:\n  " + "\n  ".join(problems) + _examples(result)
        )


def _examples(result: EvalResult, limit: int = 5) -> str:
    lines = []
    for entry in result.cases:
        if entry.passed:
            continue
        bad = {k: (s.value, s.reason or s.error) for k, s in entry.scores.items() if not s.passed}
        lines.append(f"case {entry.case.id} (repeat {entry.repeat}, run {entry.run_id}): {bad}")
        if len(lines) == limit:
            break
    return ("\nfirst failing cases:\n  " + "\n  ".join(lines)) if lines else ""


__all__ = ["Case", "Suite", "assert_experiment", "below", "check_thresholds"]

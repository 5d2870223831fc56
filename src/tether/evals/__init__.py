"""Evaluation: datasets, scorers and experiments whose cases are durable runs.

from tether import evals

result = evals.run(th, "triage", task=classify, dataset=evals.Dataset.from_file("cases.jsonl"),
                   scorers=[evals.exact(), evals.judge("Is the answer polite?")], repeat=3)
result.summary["exact"].mean, result.cases[0].run_id
evals.compare(th, result.experiment, baseline="triage:previous")

An experiment killed halfway and run again continues: finished cases (their model calls
included) are not executed again. See ``docs/evals.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tether.evals.checks import contains, exact, json_schema, pydantic, regex
from tether.evals.compare import Change, Comparison, ScorerChange, compare
from tether.evals.dataset import Case, Dataset
from tether.evals.junit import write_junit
from tether.evals.models import Verdict, judge, similarity
from tether.evals.online import Online, OnlineScore, online
from tether.evals.records import ExperimentInfo
from tether.evals.results import CaseResult, EvalResult, ScorerSummary
from tether.evals.runner import arun, run
from tether.evals.scores import FunctionScorer, Score, Scorer, scorer
from tether.evals.suite import Suite, assert_experiment

if TYPE_CHECKING:
    from tether.harness import Harness


def builtin_scorers() -> dict[str, Callable[[], Scorer]]:
    """Built-in scorers that can be named by a string in ``scorers=[...]``."""
    return {
        "exact": exact,
        "contains": contains,
        "similarity": similarity,
    }


def load(th: Harness, experiment: str, dataset: Dataset | None = None) -> EvalResult:
    """The result of a stored experiment, finished or not (nothing runs)."""
    from tether.evals.results import load as _load

    return _load(th.store, experiment, dataset)


def list_experiments(
    th: Harness, *, evaluation: str | None = None, limit: int = 50, before: str | None = None
) -> list[ExperimentInfo]:
    """Stored experiments, newest first; page with ``before=<last info.run_id>``."""
    from tether.evals.records import list_experiments as _list

    return _list(th.store, evaluation, limit, before)


def experiment_cases(
    th: Harness, experiment: str, *, offset: int = 0, limit: int = 50
) -> list[CaseResult]:
    """A page of an experiment's (case, repeat) results, in case order."""
    result = load_lazy(th, experiment)
    end = min(len(result.cases), offset + limit)
    return [result.cases[i] for i in range(offset, end)]


def load_lazy(th: Harness, experiment: str) -> EvalResult:
    """An experiment's result with its stored summary (when finished) and lazy cases,
    without streaming the records: what a dashboard page needs."""
    from tether.evals.records import case_ids, get_experiment
    from tether.evals.results import summarize

    info = get_experiment(th.store, experiment)
    ids = case_ids(th.store, experiment)
    totals: dict[str, Any] | None = info.summary
    if totals is None:
        totals = summarize(th.store, experiment, ids, info.repeat, info.scorers)
    return EvalResult(th.store, info, ids, totals)


def online_scores(
    th: Harness,
    function: Any,
    *,
    name: str | None = None,
    since: float | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[OnlineScore]:
    """The online scores of ``function``'s runs, newest first (see ``evals.online``)."""
    from tether.durable.function import DurableFunction
    from tether.evals.online import online_scores as _scores

    fid = function.id if isinstance(function, DurableFunction) else str(function)
    return _scores(th.store, fid, name=name, since=since, limit=limit, before=before)


__all__ = [
    "Case",
    "CaseResult",
    "Change",
    "Comparison",
    "Dataset",
    "EvalResult",
    "ExperimentInfo",
    "FunctionScorer",
    "Online",
    "OnlineScore",
    "Score",
    "Scorer",
    "ScorerChange",
    "ScorerSummary",
    "Suite",
    "Verdict",
    "arun",
    "assert_experiment",
    "builtin_scorers",
    "compare",
    "contains",
    "exact",
    "experiment_cases",
    "json_schema",
    "judge",
    "list_experiments",
    "load",
    "load_lazy",
    "online",
    "online_scores",
    "pydantic",
    "regex",
    "run",
    "scorer",
    "similarity",
    "write_junit",
]

"""What an experiment returns: ``EvalResult`` with ``summary`` and lazily read ``cases``.

Nothing here holds every output: the summary is accumulated by streaming the case records
from the store once, and ``result.cases`` reads a record when it is indexed or iterated, so
memory stays flat with the number of cases.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from tether.evals.dataset import Case, Dataset
from tether.evals.records import case_ids, case_records, case_run_id, get_experiment, read_record
from tether.evals.scores import Score

if TYPE_CHECKING:
    from tether.evals.records import ExperimentInfo
    from tether.store import Store


@dataclass(frozen=True, slots=True)
class ScorerSummary:
    """One scorer over an experiment. ``mean`` and ``pass_rate`` are over the ``n`` scored
    (case, repeat) results (a failed task scores 0); ``stdev`` is the sample standard
    deviation of the per-repeat means (0.0 with one repeat); ``unscored`` counts results the
    scorer could not score; ``flaky`` counts cases whose verdict differs between repeats.
    ``mean`` and ``pass_rate`` are None (never NaN) when nothing was scored."""

    mean: float | None
    pass_rate: float | None
    stdev: float
    unscored: int
    n: int
    flaky: int = 0
    repeat_means: list[float] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "pass_rate": self.pass_rate,
            "stdev": self.stdev,
            "unscored": self.unscored,
            "n": self.n,
            "flaky": self.flaky,
            "repeat_means": self.repeat_means,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScorerSummary:
        return cls(
            d.get("mean"),
            d.get("pass_rate"),
            float(d.get("stdev") or 0.0),
            int(d.get("unscored") or 0),
            int(d.get("n") or 0),
            int(d.get("flaky") or 0),
            list(d.get("repeat_means") or []),
        )


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One (case, repeat): the task's output, each scorer's ``Score``, the task's run id
    (open it with ``tether show`` or the dashboard), latency, tokens and cost. ``status``
    is ``"error"`` when the task failed (``error`` says why); ``case_run_id`` is the run
    that evaluated it."""

    case: Case
    repeat: int
    status: str
    output: Any
    scores: dict[str, Score]
    run_id: str
    case_run_id: str
    latency_s: float | None
    usage: dict[str, int]
    cost_usd: float | None
    error: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "ok" and all(s.passed for s in self.scores.values())


def scores_of(record: dict[str, Any], scorers: Sequence[str]) -> dict[str, Score]:
    """Each scorer's score in a record; a failed task scores 0 on every scorer."""
    if record.get("status") == "error":
        why = (record.get("error") or {}).get("message") or "the task failed"
        return {name: Score(0.0, False, f"the task failed: {why}"[:500]) for name in scorers}
    raw = record.get("scores") or {}
    return {
        name: Score.from_dict(raw[name])
        if name in raw
        else Score.failed_scoring("no score recorded")
        for name in scorers
    }


class _Accumulator:
    """Per-scorer sums, per repeat, and the per-case verdicts across repeats."""

    def __init__(self, repeat: int) -> None:
        self.sums = [0.0] * repeat
        self.counts = [0] * repeat
        self.passes = 0
        self.unscored = 0
        self.flaky = 0

    def add(self, repeat: int, score: Score) -> None:
        if score.value is None:
            self.unscored += 1
            return
        self.sums[repeat] += score.value
        self.counts[repeat] += 1
        self.passes += 1 if score.passed else 0

    def summary(self) -> ScorerSummary:
        n = sum(self.counts)
        means = [s / c for s, c in zip(self.sums, self.counts, strict=True) if c]
        stdev = statistics.stdev(means) if len(means) >= 2 else 0.0
        return ScorerSummary(
            mean=sum(self.sums) / n if n else None,
            pass_rate=self.passes / n if n else None,
            stdev=stdev,
            unscored=self.unscored,
            n=n,
            flaky=self.flaky,
            repeat_means=means,
        )


def summarize(
    store: Store, experiment: str, ids: list[str], repeat: int, scorers: Sequence[str]
) -> dict[str, Any]:
    """Stream the experiment's records once: per-scorer summaries and the counts."""
    acc = {name: _Accumulator(repeat) for name in scorers}
    verdicts: dict[str, set[bool]] = {name: set() for name in scorers}
    done = errors = 0
    cost = 0.0
    costed = False
    tokens = 0
    for index, _cid, r, _rid, record in case_records(store, experiment, ids, repeat):
        if r == 0:
            verdicts = {name: set() for name in scorers}
        if record is not None:
            done += 1
            errors += record.get("status") == "error"
            if record.get("cost_usd") is not None:
                cost += float(record["cost_usd"])
                costed = True
            usage = record.get("usage") or {}
            tokens += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
            for name, score in scores_of(record, scorers).items():
                acc[name].add(r, score)
                if score.passed is not None:
                    verdicts[name].add(score.passed)
        if r == repeat - 1:
            for name in scorers:
                acc[name].flaky += len(verdicts[name]) > 1
        del index
    return {
        "scorers": {name: acc[name].summary().to_dict() for name in scorers},
        "results": len(ids) * repeat,
        "completed": done,
        "errors": errors,
        "tokens": tokens,
        "cost_usd": round(cost, 10) if costed else None,
    }


class CaseResults(Sequence[CaseResult]):
    """``result.cases``: one entry per (case, repeat), in case order, read from the store
    when indexed or iterated (nothing is cached)."""

    def __init__(self, result: EvalResult) -> None:
        self._result = result

    def __len__(self) -> int:
        return len(self._result._ids) * self._result.repeat

    @overload
    def __getitem__(self, index: int) -> CaseResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[CaseResult]: ...

    def __getitem__(self, index: int | slice) -> CaseResult | list[CaseResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(f"case result {index} out of range ({size} results)")
        res = self._result
        cid, r = res._ids[index // res.repeat], index % res.repeat
        rid = case_run_id(res.experiment, cid, r)
        record = read_record(res._store, rid)
        return res._build(cid, r, rid, record)

    def __iter__(self) -> Iterator[CaseResult]:
        res = self._result
        for _i, cid, r, rid, record in case_records(
            res._store, res.experiment, res._ids, res.repeat
        ):
            yield res._build(cid, r, rid, record)


class EvalResult:
    """An experiment's outcome: ``summary[scorer]`` (``mean``, ``pass_rate``, ``stdev``,
    ``unscored``, ``n``, ``flaky``), ``cases`` (lazy), ``errors``, ``completed``."""

    def __init__(
        self,
        store: Store,
        info: ExperimentInfo,
        ids: list[str],
        totals: dict[str, Any],
        dataset: Dataset | None = None,
    ) -> None:
        self._store = store
        self._ids = ids
        self._dataset = dataset
        self._by_id: dict[str, Case] | None = None
        self.info = info
        self.name = info.evaluation
        self.experiment = info.name
        self.repeat = info.repeat
        self.scorers = list(info.scorers)
        self.summary: dict[str, ScorerSummary] = {
            name: ScorerSummary.from_dict(d) for name, d in totals["scorers"].items()
        }
        self.results: int = totals["results"]
        self.completed: int = totals["completed"]
        self.errors: int = totals["errors"]
        self.tokens: int = totals.get("tokens", 0)
        self.cost_usd: float | None = totals.get("cost_usd")
        self.cases = CaseResults(self)

    def __repr__(self) -> str:
        means = ", ".join(
            f"{k}={v.mean:.3f}" if v.mean is not None else f"{k}=unscored"
            for k, v in self.summary.items()
        )
        return f"<EvalResult {self.experiment!r}: {self.completed}/{self.results} results, {means}>"

    @property
    def finished(self) -> bool:
        return self.completed == self.results

    def min_mean(self) -> float | None:
        """The lowest scorer mean (None when a scorer scored nothing)."""
        means = [s.mean for s in self.summary.values()]
        return None if any(m is None for m in means) else min(m for m in means if m is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluation": self.name,
            "experiment": self.experiment,
            "repeat": self.repeat,
            "results": self.results,
            "completed": self.completed,
            "errors": self.errors,
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "summary": {k: v.to_dict() for k, v in self.summary.items()},
        }

    def _case(self, cid: str, rid: str) -> Case:
        if self._dataset is not None:
            if self._by_id is None:
                self._by_id = {c.id: c for c in self._dataset}
            found = self._by_id.get(cid)
            if found is not None:
                return found
        run = self._store.get_run(rid)
        data = (run.input or {}).get("case") if run is not None else None
        return Case.from_dict(data) if data else Case(None, id=cid)

    def _build(self, cid: str, r: int, rid: str, record: dict[str, Any] | None) -> CaseResult:
        case = self._case(cid, rid)
        if record is None:
            missing = {n: Score.failed_scoring("not run yet") for n in self.scorers}
            return CaseResult(case, r, "pending", None, missing, rid, rid, None, {}, None)
        return CaseResult(
            case=case,
            repeat=r,
            status=record.get("status", "ok"),
            output=record.get("output"),
            scores=scores_of(record, self.scorers),
            run_id=record.get("run_id") or rid,
            case_run_id=rid,
            latency_s=record.get("latency_s"),
            usage=dict(record.get("usage") or {}),
            cost_usd=record.get("cost_usd"),
            error=record.get("error"),
        )


def load(store: Store, experiment: str, dataset: Dataset | None = None) -> EvalResult:
    """The result of a stored experiment (finished or not), summarised from the store."""
    info = get_experiment(store, experiment)
    ids = case_ids(store, experiment)
    totals = summarize(store, experiment, ids, info.repeat, info.scorers)
    return EvalResult(store, info, ids, totals, dataset)


__all__ = ["CaseResult", "CaseResults", "EvalResult", "ScorerSummary", "load", "summarize"]

"""``evals.compare``: an experiment against a baseline, case by case.

For every case in both experiments and every scorer in both, the case's value on each side
is its mean over the scored repeats. A regression is a drop of more than ``min_delta``; an
improvement a rise of more than ``min_delta``; the rest are unchanged. Cases or scorers
missing on one side, or unscored on one side, are listed in ``skipped``.

Significance (document of the tests used):

- per change, when both sides have at least 2 scored repeats: an exact two-sided
  permutation test of the difference in means over the pooled repeat values (Monte Carlo
  with 20,000 draws and a fixed seed beyond 20,000 arrangements). It assumes nothing about
  the distribution and handles ties and 0/1 verdicts; with 3 repeats a side its smallest
  p-value is 0.1, which the note says: a per-case change needs more repeats to be significant.
- per scorer: a paired sign-flip permutation test over the cases' differences (exact up to
  16 non-zero differences, else 20,000 draws with a fixed seed), two-sided.

Nothing is held but per-case means: records are streamed from the store.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tether.errors import ConfigurationError
from tether.evals.records import case_ids, case_run_id, get_experiment, read_record
from tether.evals.results import scores_of
from tether.store.retention import BASELINE_PREFIX

if TYPE_CHECKING:
    from tether.harness import Harness
    from tether.store import Store

DRAWS = 20_000
EXACT_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class Change:
    """One (case, scorer): the baseline's value and this experiment's (means over repeats)."""

    case: str
    scorer: str
    baseline: float
    value: float
    p_value: float | None = None
    note: str = ""

    @property
    def delta(self) -> float:
        return self.value - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "scorer": self.scorer,
            "baseline": self.baseline,
            "value": self.value,
            "delta": self.delta,
            "p_value": self.p_value,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class ScorerChange:
    """A scorer's mean over the common cases on both sides, with the paired test."""

    scorer: str
    baseline: float | None
    value: float | None
    cases: int
    p_value: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "baseline": self.baseline,
            "value": self.value,
            "cases": self.cases,
            "p_value": self.p_value,
            "note": self.note,
        }


@dataclass
class Comparison:
    """``regressions``, ``improvements`` and ``unchanged`` (lists of ``Change``),
    ``skipped`` (case, scorer, why) and ``scorers`` (per-scorer means and test)."""

    experiment: str
    baseline: str
    regressions: list[Change] = field(default_factory=list)
    improvements: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    scorers: dict[str, ScorerChange] = field(default_factory=dict)
    note: str = ""

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "baseline": self.baseline,
            "regressions": [c.to_dict() for c in self.regressions],
            "improvements": [c.to_dict() for c in self.improvements],
            "unchanged": len(self.unchanged),
            "skipped": [list(s) for s in self.skipped],
            "scorers": {k: v.to_dict() for k, v in self.scorers.items()},
            "note": self.note,
        }


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided permutation test of mean(a) - mean(b) over the pooled values."""
    pooled = list(a) + list(b)
    n, k = len(pooled), len(a)
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    total = sum(pooled)
    eps = 1e-12

    def diff(first_sum: float) -> float:
        return abs(first_sum / k - (total - first_sum) / (n - k))

    if math.comb(n, k) <= EXACT_LIMIT:
        hits = count = 0
        for combo in itertools.combinations(range(n), k):
            count += 1
            hits += diff(sum(pooled[i] for i in combo)) >= observed - eps
        return hits / count
    rng = random.Random(0)
    hits = 0
    for _ in range(DRAWS):
        hits += diff(sum(rng.sample(pooled, k))) >= observed - eps
    return (hits + 1) / (DRAWS + 1)


def sign_flip_p(diffs: Sequence[float]) -> float | None:
    """Two-sided paired sign-flip permutation test of the mean difference."""
    nonzero = [d for d in diffs if abs(d) > 1e-12]
    if not nonzero:
        return None
    observed = abs(sum(nonzero))
    eps = 1e-12
    if len(nonzero) <= 16:
        hits = count = 0
        for signs in itertools.product((1, -1), repeat=len(nonzero)):
            count += 1
            hits += abs(sum(s * d for s, d in zip(signs, nonzero, strict=True))) >= observed - eps
        return hits / count
    rng = random.Random(0)
    hits = 0
    for _ in range(DRAWS):
        hits += abs(sum(d if rng.random() < 0.5 else -d for d in nonzero)) >= observed - eps
    return (hits + 1) / (DRAWS + 1)


def _values(
    store: Store, experiment: str, cid: str, repeat: int, scorers: list[str]
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in scorers}
    for r in range(repeat):
        record = read_record(store, case_run_id(experiment, cid, r))
        if record is None:
            continue
        for name, score in scores_of(record, scorers).items():
            if score.value is not None:
                out[name].append(score.value)
    return out


def _note(p: float | None, na: int, nb: int, alpha: float) -> str:
    if p is None:
        return ""
    verdict = "significant" if p <= alpha else "not significant"
    return f"p={p:.3g} (exact permutation test, {na} vs {nb} repeats): {verdict} at {alpha}"


def mark_baseline(store: Store, experiment: str) -> None:
    """Record that ``experiment`` served as a baseline: retention keeps it whatever its age
    (``tether prune``); once per experiment."""
    key = BASELINE_PREFIX + experiment
    if store.kv_get(key) is None:
        store.kv_set(key, "1")


def compare(
    th: Harness | str,
    experiment: str | None = None,
    *,
    baseline: str,
    store: Harness | Store | None = None,
    min_delta: float = 0.0,
    alpha: float = 0.05,
) -> Comparison:
    """Compare ``experiment`` with ``baseline`` case by case (see the module docs).
    ``evals.compare(th, "triage-v2", baseline="triage-v1")``; ``evals.compare("triage-v2",
    baseline="triage-v1", store=th)`` also works."""
    from tether.harness import Harness

    if isinstance(th, str):
        experiment, holder = th, store
    else:
        holder = th
    if isinstance(holder, Harness):
        st = holder.store
    elif holder is not None and hasattr(holder, "run_result"):
        st = holder  # a Store
    else:
        raise ConfigurationError(
            "evals.compare needs the harness: evals.compare(th, experiment, baseline=...)"
        )
    if not isinstance(experiment, str) or not isinstance(baseline, str):
        raise ConfigurationError("evals.compare needs two experiment names (strings)")
    if isinstance(min_delta, bool) or not isinstance(min_delta, int | float) or min_delta < 0:
        raise ConfigurationError(f"min_delta must be a number >= 0, got {min_delta!r}")
    mine, base = get_experiment(st, experiment), get_experiment(st, baseline)
    mark_baseline(st, baseline)
    scorers = [s for s in mine.scorers if s in base.scorers]
    out = Comparison(experiment, baseline)
    for name in mine.scorers:
        if name not in base.scorers:
            out.skipped.append(("*", name, f"the baseline has no scorer {name!r}"))
    base_ids = set(case_ids(st, baseline))
    diffs: dict[str, list[float]] = {name: [] for name in scorers}
    sums = {name: [0.0, 0.0] for name in scorers}
    for cid in case_ids(st, experiment):
        if cid not in base_ids:
            out.skipped.append((cid, "*", "the case is not in the baseline"))
            continue
        now = _values(st, experiment, cid, mine.repeat, scorers)
        then = _values(st, baseline, cid, base.repeat, scorers)
        for name in scorers:
            a, b = now[name], then[name]
            if not a or not b:
                side = "this experiment" if not a else "the baseline"
                out.skipped.append((cid, name, f"unscored in {side}"))
                continue
            value, was = statistics.fmean(a), statistics.fmean(b)
            p = permutation_p(a, b) if len(a) >= 2 and len(b) >= 2 and value != was else None
            change = Change(cid, name, was, value, p, _note(p, len(a), len(b), alpha))
            diffs[name].append(value - was)
            sums[name][0] += was
            sums[name][1] += value
            if value < was - min_delta:
                out.regressions.append(change)
            elif value > was + min_delta:
                out.improvements.append(change)
            else:
                out.unchanged.append(change)
    for name in scorers:
        n = len(diffs[name])
        p = sign_flip_p(diffs[name])
        note = (
            f"p={p:.3g} (paired sign-flip permutation test over {n} cases)"
            if p is not None
            else "no case changed"
        )
        out.scorers[name] = ScorerChange(
            name,
            sums[name][0] / n if n else None,
            sums[name][1] / n if n else None,
            n,
            p,
            note,
        )
    if mine.repeat < 2 or base.repeat < 2:
        out.note = (
            "one repeat on a side: per-case changes carry no significance test; "
            "run with repeat >= 2 to tell a change from noise"
        )
    return out


__all__ = ["Change", "Comparison", "ScorerChange", "compare", "permutation_p", "sign_flip_p"]

"""``evals.compare``: regressions, improvements and unchanged cases against a baseline, with
the permutation tests behind the significance notes."""

from __future__ import annotations

from typing import Any

import pytest

import tether
from tether import ConfigurationError, evals
from tether.evals.compare import permutation_p, sign_flip_p

CASES = evals.Dataset(
    [
        evals.Case("a", "A", id="a"),
        evals.Case("b", "B", id="b"),
        evals.Case("c", "C", id="c"),
        evals.Case("d", "D", id="d"),
    ]
)


def run(th: tether.Harness, name: str, answers: dict[str, str], **options: Any) -> evals.EvalResult:
    def task(value: str) -> str:
        return answers[value]

    return evals.run(
        th, "cmp", task=task, dataset=CASES, scorers=[evals.exact()], experiment=name, **options
    )


def test_regressions_improvements_and_unchanged_cases(th: tether.Harness) -> None:
    run(th, "v1", {"a": "A", "b": "B", "c": "x", "d": "D"})
    run(th, "v2", {"a": "A", "b": "x", "c": "C", "d": "D"})
    cmp = evals.compare(th, "v2", baseline="v1")
    assert [(c.case, c.scorer, c.baseline, c.value) for c in cmp.regressions] == [
        ("b", "exact", 1.0, 0.0)
    ]
    assert [(c.case, c.baseline, c.value, c.delta) for c in cmp.improvements] == [
        ("c", 0.0, 1.0, 1.0)
    ]
    assert sorted(c.case for c in cmp.unchanged) == ["a", "d"]
    assert cmp.regressed and "one repeat" in cmp.note
    assert cmp.regressions[0].p_value is None  # one repeat: no per-case test
    overall = cmp.scorers["exact"]
    assert (overall.baseline, overall.value, overall.cases) == (0.75, 0.75, 4)
    assert overall.p_value == 1.0  # one up, one down: no change overall
    # the design's other spelling
    same = evals.compare("v2", baseline="v1", store=th)
    assert [c.case for c in same.regressions] == ["b"]
    # a tolerance: drops up to min_delta are not regressions
    assert evals.compare(th, "v2", baseline="v1", min_delta=1.0).regressions == []


def test_with_repeats_each_change_carries_a_permutation_test(th: tether.Harness) -> None:
    run(th, "r1", {"a": "A", "b": "B", "c": "C", "d": "D"}, repeat=3)
    run(th, "r2", {"a": "x", "b": "B", "c": "C", "d": "D"}, repeat=3)
    cmp = evals.compare(th, "r2", baseline="r1")
    [reg] = cmp.regressions
    assert reg.case == "a" and (reg.baseline, reg.value) == (1.0, 0.0)
    # 3 vs 3 repeats, completely separated: the smallest possible p is 2/20
    assert reg.p_value == pytest.approx(0.1)
    assert "exact permutation test, 3 vs 3 repeats" in reg.note and "not significant" in reg.note
    assert cmp.note == ""


def test_cases_and_scorers_missing_on_one_side_are_skipped(th: tether.Harness) -> None:
    run(th, "base", {"a": "A", "b": "B", "c": "C", "d": "D"})
    more = evals.Dataset([*CASES, evals.Case("e", "E", id="e")])
    answers = {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}
    evals.run(
        th,
        "cmp",
        task=lambda v: answers[v],
        dataset=more,
        scorers=[evals.exact(), evals.contains("A")],
        experiment="wider",
    )
    cmp = evals.compare(th, "wider", baseline="base")
    assert ("e", "*", "the case is not in the baseline") in cmp.skipped
    assert ("*", "contains", "the baseline has no scorer 'contains'") in cmp.skipped
    assert len(cmp.unchanged) == 4 and not cmp.regressed
    with pytest.raises(ConfigurationError, match="no experiment named 'nope'"):
        evals.compare(th, "nope", baseline="base")


def test_the_permutation_tests() -> None:
    assert permutation_p([1, 1, 1], [0, 0, 0]) == pytest.approx(2 / 20)
    assert permutation_p([1, 0, 1], [1, 0, 1]) == 1.0
    big = permutation_p([1.0] * 12, [0.0] * 12)  # C(24, 12) arrangements: sampled
    assert big < 0.001
    assert sign_flip_p([0.5] * 5) == pytest.approx(2 / 32)
    assert sign_flip_p([0.0, 0.0]) is None
    assert sign_flip_p([0.1] * 30) < 0.001

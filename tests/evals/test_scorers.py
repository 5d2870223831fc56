"""Scorers: built-in checks, names, coercion of return values, and bad scorers."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel

from tether import ConfigurationError, evals
from tether.evals.scores import coerce


class Ticket(BaseModel):
    category: str
    priority: int


def check(scorer: evals.Scorer, output: Any, expected: Any = None) -> evals.Score:
    """What the scorer records for one output (the step body of a case run)."""
    return evals.Score.from_dict(scorer.compute(evals.Case("in", expected), output))


def test_built_in_scorers_are_named_after_their_factory() -> None:
    scorers = [
        evals.exact(),
        evals.contains("x"),
        evals.regex("x"),
        evals.json_schema({"type": "object"}),
        evals.pydantic(Ticket),
        evals.similarity(),
        evals.judge("Is it polite?"),
    ]
    names = ["exact", "contains", "regex", "json_schema", "pydantic", "similarity", "judge"]
    assert [s.name for s in scorers] == names
    assert evals.contains("x", name="has-x").name == "has-x"

    def tone(case: evals.Case, output: Any) -> float:
        return 1.0

    assert evals.scorer(tone).name == "tone"
    assert evals.scorer(tone, name="politeness").name == "politeness"


def test_exact_compares_values_and_text() -> None:
    assert check(evals.exact(), "billing", "billing").passed
    failed = check(evals.exact(), "Billing", "billing")
    assert failed.value == 0.0 and failed.passed is False and "expected 'billing'" in failed.reason
    assert check(evals.exact(ignore_case=True), "Billing", "billing").passed
    assert check(evals.exact(strip=True), " billing\n", "billing").passed
    assert check(evals.exact(), {"b": 1, "a": [1, 2]}, {"a": [1, 2], "b": 1}).passed
    assert not check(evals.exact(), {"a": 1}, {"a": 2}).passed
    # no expected value: nothing to compare with, which is not a failure
    missing = check(evals.exact(), "anything", None)
    assert missing.unscored and missing.value is None and "no expected value" in str(missing.error)


def test_contains_is_case_sensitive_unless_asked() -> None:
    assert check(evals.contains("refund"), "We will refund you").passed
    assert not check(evals.contains("Refund"), "We will refund you").passed
    assert check(evals.contains("Refund", ignore_case=True), "We will refund you").passed
    assert check(evals.contains(), "the answer is 42", expected="42").passed  # default: expected
    assert check(evals.contains("42"), {"answer": 42}).passed  # objects are read as JSON


def test_regex_searches_anywhere() -> None:
    assert check(evals.regex(r"\d{3}"), "ticket 123 opened").passed
    assert not check(evals.regex(r"^\d+$"), "ticket 123").passed
    with pytest.raises(ConfigurationError, match="not a valid pattern"):
        evals.regex("(unclosed")


def test_json_schema_accepts_objects_and_json_text() -> None:
    schema = {
        "type": "object",
        "properties": {"category": {"type": "string"}, "priority": {"type": "integer"}},
        "required": ["category", "priority"],
    }
    scorer = evals.json_schema(schema)
    assert check(scorer, {"category": "billing", "priority": 2}).passed
    assert check(scorer, '{"category": "billing", "priority": 2}').passed
    bad = check(scorer, {"category": "billing", "priority": "high"})
    assert bad.value == 0.0 and "priority" in bad.reason and not bad.unscored
    not_json = check(scorer, '{"category": ')
    assert not_json.passed is False and "not JSON" in not_json.reason
    assert check(evals.json_schema(Ticket), {"category": "a", "priority": 1}).passed
    with pytest.raises(ConfigurationError, match="not a valid JSON schema"):
        evals.json_schema({"type": "no-such-type"})
    with pytest.raises(ConfigurationError, match="takes a JSON schema"):
        evals.json_schema("object")


def test_pydantic_validates_objects_and_json_text() -> None:
    scorer = evals.pydantic(Ticket)
    assert check(scorer, {"category": "billing", "priority": 2}).passed
    assert check(scorer, '{"category": "billing", "priority": 2}').passed
    bad = check(scorer, '{"category": "billing"}')
    assert bad.passed is False and "priority" in bad.reason
    assert check(scorer, "not json at all").passed is False
    with pytest.raises(ConfigurationError, match="pydantic model class"):
        evals.pydantic(dict)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("returned", "value", "passed"),
    [
        (True, 1.0, True),
        (False, 0.0, False),
        (0.75, 0.75, True),
        (0.25, 0.25, False),
        (1, 1.0, True),
        (evals.Score(0.2, passed=True, reason="lenient"), 0.2, True),
        (evals.Score(0.9), 0.9, True),
    ],
)
def test_scores_floats_and_bools(returned: Any, value: float, passed: bool) -> None:
    score = coerce(returned, threshold=0.5)
    assert (score.value, score.passed, score.unscored) == (value, passed, False)


@pytest.mark.parametrize(
    ("returned", "why"),
    [
        (math.nan, "NaN"),
        (evals.Score(math.nan), "NaN"),
        (1.5, "outside 0..1"),
        (-0.1, "outside 0..1"),
        (math.inf, "outside 0..1"),
        (None, "returned None"),
        ("0.9", "returned a str"),
    ],
)
def test_nan_and_non_scores_are_unscored_never_zero(returned: Any, why: str) -> None:
    score = coerce(returned, threshold=0.5)
    assert score.unscored and score.value is None and score.passed is None
    assert why in str(score.error)


def test_a_float_passes_at_the_scorers_threshold() -> None:
    def half(case: evals.Case, output: Any) -> float:
        return 0.6

    assert check(evals.scorer(half), "x").passed
    assert not check(evals.scorer(half, threshold=0.7), "x").passed


def test_a_scorer_that_raises_is_unscored_with_the_error() -> None:
    def broken(case: evals.Case, output: Any) -> float:
        raise KeyError("missing field")

    score = check(evals.scorer(broken), "x")
    assert score.unscored and score.error == "KeyError: 'missing field'"


def test_bad_scorers_are_clear_errors() -> None:
    from tether.evals import builtin_scorers
    from tether.evals.scores import resolve_scorers

    with pytest.raises(ConfigurationError, match="unknown scorer 'exactly'"):
        resolve_scorers(["exactly"], builtin_scorers())
    with pytest.raises(ConfigurationError, match="scorer #1 \\(42\\) is not a scorer"):
        resolve_scorers([evals.exact(), 42], builtin_scorers())
    with pytest.raises(ConfigurationError, match="two scorers are named 'exact'"):
        resolve_scorers([evals.exact(), evals.exact()], builtin_scorers())
    with pytest.raises(ConfigurationError, match="must accept \\(case, output\\)"):
        resolve_scorers([lambda output: 1.0], builtin_scorers())
    with pytest.raises(ConfigurationError, match="scorers= is empty"):
        resolve_scorers([], builtin_scorers())
    for bad in (1.5, -0.1, "high", True):
        with pytest.raises(ConfigurationError, match="between 0 and 1"):
            evals.similarity(threshold=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        evals.scorer(lambda c, o: 1.0, threshold=2)
    with pytest.raises(ConfigurationError, match="needs a rubric"):
        evals.judge("  ")

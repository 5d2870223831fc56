"""Model-backed scorers: ``similarity`` (embeddings) and ``judge`` (an LLM with a rubric).

Both make their model calls inside durable steps of the case's run: a resumed experiment
reads the recorded embedding score or verdict and never calls the model again.

How the judge keeps flakiness in check:

- temperature 0 (greedy decoding) and a fixed prompt, so the same case asks the same thing;
- a verdict schema (``{"reason": str, "verdict": "pass" | "fail"}``) enforced as structured
  output (grammar-constrained on ``local:`` models, JSON schema on hosted ones) and validated,
  with re-asks on an invalid reply; the reason comes first, so the verdict follows from it;
- the response is checkpointed: once recorded, a verdict is fixed for that (case, repeat);
- ``repeat=N`` measures what remains: ``stdev`` over the per-repeat means and ``flaky`` (cases
  whose verdict differs between repeats) in the summary, and ``evals.compare`` tests whether a
  change is larger than that noise.

A judge whose call fails (after ``tether.llm``'s own retries and fallbacks) or whose reply
never validates leaves the case unscored with the error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from tether.errors import ConfigurationError, StepFailed
from tether.evals.checks import as_text, expected_of
from tether.evals.scores import Score, Scorer, check_threshold, error_text

if TYPE_CHECKING:
    from tether.durable.context import Context
    from tether.evals.dataset import Case

DEFAULT_EMBEDDING_MODEL = "local:all-minilm-l6-v2"
DEFAULT_JUDGE_MODEL = "local:smollm2-135m"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b) or not a:
        raise ValueError(f"vectors of different sizes ({len(a)} and {len(b)})")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        raise ValueError("an embedding is the zero vector")
    return dot / (na * nb)


class Similarity(Scorer):
    def __init__(
        self, threshold: float, model: str, name: str | None, options: dict[str, Any]
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"similarity(model=...) takes a model string, got {model!r}")
        self.model = model
        self.options = options
        super().__init__(name, check_threshold(threshold, "similarity(threshold=...)"))

    def default_name(self) -> str:
        return "similarity"

    async def score(self, case: Case, output: Any) -> Score:
        from tether.llm import aembed

        want = as_text(expected_of(case, "similarity"))
        got = as_text(output)
        if got == want:
            return Score(1.0, True, "identical text")
        result = await aembed(self.model, [got, want], **self.options)
        value = max(0.0, min(1.0, cosine(result.vectors[0], result.vectors[1])))
        return Score(value, value >= self.threshold, f"cosine {value:.3f}")

    def describe(self) -> str:
        return f"similarity({self.name!r}, {self.model!r}, {self.threshold})"


def similarity(
    threshold: float = 0.8,
    *,
    model: str = DEFAULT_EMBEDDING_MODEL,
    name: str | None = None,
    min_score: float | None = None,
    **options: Any,
) -> Scorer:
    """Cosine similarity of the embeddings of the output and the case's ``expected`` text
    (negative similarity counts as 0), passed when >= ``threshold``. ``model`` is any
    ``tether.llm.embed`` model; ``options`` go to the call (``fallbacks``, ``deadline``...).
    ``min_score`` is another name for ``threshold``."""
    return Similarity(threshold if min_score is None else min_score, model, name, options)


class Verdict(BaseModel):
    """What the judge must answer: its reasoning, then pass or fail."""

    reason: str
    verdict: Literal["pass", "fail"]


JUDGE_SYSTEM = (
    "You are a strict, impartial evaluator. You are given a rubric, the input a system "
    "received, optionally a reference answer, and the system's output. Decide whether the "
    "output satisfies the rubric. Reply with only a JSON object: "
    '{"reason": "<one or two sentences>", "verdict": "pass" or "fail"}.'
)


class Judge(Scorer):
    def __init__(
        self,
        rubric: str,
        model: str,
        name: str | None,
        threshold: float,
        max_tokens: int,
        options: dict[str, Any],
    ) -> None:
        if not isinstance(rubric, str) or not rubric.strip():
            raise ConfigurationError("judge() needs a rubric: the question the judge answers")
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"judge(model=...) takes a model string, got {model!r}")
        self.rubric = rubric.strip()
        self.model = model
        self.max_tokens = max_tokens
        self.options = options
        super().__init__(name, threshold)

    def default_name(self) -> str:
        return "judge"

    def messages(self, case: Case, output: Any) -> list[dict[str, str]]:
        parts = [f"Rubric: {self.rubric}", f"Input:\n{as_text(case.input)}"]
        if case.expected is not None:
            parts.append(f"Reference answer:\n{as_text(case.expected)}")
        parts.append(f"Output to evaluate:\n{as_text(output)}")
        return [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    async def score(self, case: Case, output: Any) -> Score:
        """The verdict of one direct model call, outside any run (nothing recorded): for
        scoring by hand or in a plain test. Inside an experiment ``run`` makes the same call
        a durable LLM step."""
        from tether.errors import TetherError
        from tether.llm import acomplete

        try:
            resp = await acomplete(self.model, self.messages(case, output), **self._call())
        except TetherError as exc:
            return Score.failed_scoring(f"the judge's call failed: {error_text(exc)}")
        return self._verdict(resp.parsed)

    async def run(self, ctx: Context, case: Case, output: Any) -> Score:
        try:
            resp = await ctx.step.llm(
                f"judge:{self.name}",
                model=self.model,
                messages=self.messages(case, output),
                **self._call(),
            )
        except StepFailed as exc:
            return Score.failed_scoring(f"the judge's call failed: {error_text(exc)}")
        return self._verdict(resp.parsed)

    def _call(self) -> dict[str, Any]:
        return {
            "output": Verdict,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            **self.options,
        }

    @staticmethod
    def _verdict(verdict: Any) -> Score:
        if not isinstance(verdict, Verdict):
            return Score.failed_scoring("the judge's reply had no verdict")
        passed = verdict.verdict == "pass"
        return Score(1.0 if passed else 0.0, passed, verdict.reason[:1000])

    def describe(self) -> str:
        return f"judge({self.name!r}, {self.rubric!r}, {self.model!r}, {self.max_tokens})"


def judge(
    rubric: str,
    *,
    model: str = DEFAULT_JUDGE_MODEL,
    name: str | None = None,
    threshold: float = 0.5,
    max_tokens: int = 256,
    **options: Any,
) -> Scorer:
    """An LLM judge: ``model`` reads the rubric, the case and the output and answers a
    pass/fail verdict with a reason, at temperature 0, as a durable LLM step. ``options``
    go to ``ctx.step.llm`` (``fallbacks``, ``deadline``, ``max_cost_usd``...)."""
    return Judge(rubric, model, name, threshold, max_tokens, options)


__all__ = ["Verdict", "cosine", "judge", "similarity"]

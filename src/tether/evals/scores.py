"""Scores and the scorer interface.

A scorer turns ``(case, output)`` into a ``Score``: a value in 0..1, whether it passed, and
why. It may return a ``Score``, a float in 0..1 (passed when >= its ``threshold``) or a
bool. A scorer that raises, or returns NaN, None, or a number outside 0..1, leaves the case
*unscored* with the error: never a zero, never NaN. Each score is computed in a durable
step of the case's run, so a resumed experiment does not compute it again.
"""

from __future__ import annotations

import abc
import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import ConfigurationError, StepFailed

if TYPE_CHECKING:
    from tether.durable.context import Context
    from tether.evals.dataset import Case


@dataclass(frozen=True, slots=True)
class Score:
    """``value`` in 0..1 (None when unscored), ``passed``, a ``reason``, and ``error`` when
    the scorer could not score the case."""

    value: float | None
    passed: bool | None = None
    reason: str = ""
    error: str | None = None

    @property
    def unscored(self) -> bool:
        return self.error is not None

    @classmethod
    def failed_scoring(cls, error: str) -> Score:
        return cls(None, None, "", error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "passed": self.passed,
            "reason": self.reason,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        return cls(
            data.get("value"), data.get("passed"), data.get("reason") or "", data.get("error")
        )


def check_threshold(value: Any, what: str) -> float:
    """A threshold in 0..1, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigurationError(
            f"{what} must be a number between 0 and 1 (scores are in 0..1), got {value!r}"
        )
    return float(value)


def coerce(result: Any, threshold: float) -> Score:
    """A scorer's return value as a ``Score``; anything that is not a score is unscored."""
    if isinstance(result, bool):
        return Score(1.0 if result else 0.0, result)
    if isinstance(result, Score):
        if result.error is not None:
            return Score.failed_scoring(result.error)
        problem = _bad_value(result.value)
        if problem:
            return Score.failed_scoring(f"returned Score({result.value!r}): {problem}")
        value = float(result.value)  # type: ignore[arg-type]
        passed = result.passed if result.passed is not None else value >= threshold
        return Score(value, bool(passed), str(result.reason or ""))
    if isinstance(result, int | float):
        problem = _bad_value(result)
        if problem:
            return Score.failed_scoring(f"returned {result!r}: {problem}")
        return Score(float(result), float(result) >= threshold)
    if result is None:
        return Score.failed_scoring("returned None, not a Score, a float in 0..1 or a bool")
    return Score.failed_scoring(
        f"returned a {type(result).__name__}, not a Score, a float in 0..1 or a bool"
    )


def _bad_value(value: Any) -> str:
    if isinstance(value, bool):
        return ""
    if not isinstance(value, int | float):
        return f"the value is a {type(value).__name__}, not a number"
    if math.isnan(value):
        return "NaN is not a score"
    if not 0.0 <= value <= 1.0:
        return "outside 0..1"
    return ""


def is_async(fn: Any) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = type(fn).__dict__.get("__call__")
    return call is not None and inspect.iscoroutinefunction(call)


def code_hash(fn: Any) -> str:
    """What identifies a callable's code: its source for a ``def``; for a lambda (whose
    "source" is the whole statement around it) or a callable object, its bytecode."""
    from tether.durable.function import source_hash

    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__name__", "") != "<lambda>":
        return source_hash(fn)
    parts: list[str] = []

    def walk(c: Any) -> None:
        parts.append(c.co_code.hex())
        parts.append(repr(c.co_names))
        for const in c.co_consts:
            if hasattr(const, "co_code"):
                walk(const)
            else:
                parts.append(repr(const))

    walk(code)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def error_text(exc: BaseException) -> str:
    if isinstance(exc, StepFailed):
        return f"{exc.error_type}: {exc.error_message}"
    return f"{type(exc).__name__}: {exc}"


class Scorer(abc.ABC):
    """Subclass to write a scorer: implement ``score(case, output)`` (a plain or an
    ``async`` method) returning a ``Score``, a float in 0..1 or a bool. Scorers whose work
    includes model calls override ``run`` to make them durable LLM steps (see ``judge``)."""

    name: str
    threshold: float

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        self.name = name or self.default_name()
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"a scorer name must be a non-empty string, got {name!r}")
        self.threshold = check_threshold(threshold, f"the threshold of scorer {self.name!r}")

    def default_name(self) -> str:
        return type(self).__name__.lower()

    @abc.abstractmethod
    def score(self, case: Case, output: Any) -> Any:
        """Score one output: a ``Score``, a float in 0..1 or a bool (or an awaitable of one)."""

    def describe(self) -> str:
        """What identifies this scorer's behaviour (part of an experiment's code version)."""
        return f"{type(self).__qualname__}({self.name!r}, {self.threshold})"

    def _is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.score)

    def compute(self, case: Case, output: Any) -> dict[str, Any]:
        """``score`` with its result coerced; an exception becomes an unscored result."""
        try:
            return coerce(self.score(case, output), self.threshold).to_dict()
        except Exception as exc:
            return Score.failed_scoring(error_text(exc)).to_dict()

    async def acompute(self, case: Case, output: Any) -> dict[str, Any]:
        try:
            return coerce(await self.score(case, output), self.threshold).to_dict()
        except Exception as exc:
            return Score.failed_scoring(error_text(exc)).to_dict()

    async def run(self, ctx: Context, case: Case, output: Any) -> Score:
        """Compute the score in a durable step of ``ctx``'s run (recorded, never repeated)."""
        step = f"score:{self.name}"
        if self._is_async():
            data = await ctx.step.run(step, self.acompute, case, output)
        else:
            data = await ctx.step.run(step, self.compute, case, output)
        return Score.from_dict(data)

    def __repr__(self) -> str:
        return f"<scorer {self.name}>"


class FunctionScorer(Scorer):
    """A plain ``(case, output) -> Score | float | bool`` callable, sync or async."""

    def __init__(
        self, fn: Callable[..., Any], name: str | None = None, threshold: float = 0.5
    ) -> None:
        self.fn = fn
        _check_signature(fn, name)
        super().__init__(name or getattr(fn, "__name__", None) or type(fn).__name__, threshold)

    def score(self, case: Case, output: Any) -> Any:
        return self.fn(case, output)

    def _is_async(self) -> bool:
        return is_async(self.fn)

    async def acompute(self, case: Case, output: Any) -> dict[str, Any]:
        try:
            return coerce(await self.fn(case, output), self.threshold).to_dict()
        except Exception as exc:
            return Score.failed_scoring(error_text(exc)).to_dict()

    def describe(self) -> str:
        return f"fn:{self.name}:{code_hash(self.fn)}:{self.threshold}"


def _check_signature(fn: Callable[..., Any], name: str | None) -> None:
    label = name or getattr(fn, "__name__", repr(fn))
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise ConfigurationError(
            f"scorer {label!r} must accept (case, output), like def {label}(case, output): ..."
        ) from None
    except ValueError:  # no signature (a builtin): trust it
        return


def scorer(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, threshold: float = 0.5
) -> Any:
    """Make a scorer of a callable, optionally naming it: ``evals.scorer(fn, name="tone")``
    or ``@evals.scorer(threshold=0.7)``."""
    if fn is None:
        return lambda f: FunctionScorer(f, name, threshold)
    return FunctionScorer(fn, name, threshold)


def resolve_scorers(
    items: Sequence[Any], builtins: dict[str, Callable[[], Scorer]]
) -> list[Scorer]:
    """Scorer objects for ``scorers=[...]``: ``Scorer`` instances, callables, or the names of
    built-in scorers that need no arguments. Names must be unique."""
    if isinstance(items, str | Scorer) or not isinstance(items, Sequence):
        items = [items]
    if not items:
        raise ConfigurationError("scorers= is empty: pass at least one scorer, e.g. evals.exact()")
    out: list[Scorer] = []
    for index, item in enumerate(items):
        if isinstance(item, Scorer):
            out.append(item)
        elif isinstance(item, str):
            factory = builtins.get(item)
            if factory is None:
                raise ConfigurationError(
                    f"unknown scorer {item!r}: use one of {sorted(builtins)} by name, a scorer "
                    "object such as evals.contains('refund'), or a (case, output) callable"
                )
            out.append(factory())
        elif callable(item) and not isinstance(item, type):
            out.append(FunctionScorer(item))
        else:
            raise ConfigurationError(
                f"scorer #{index} ({item!r}) is not a scorer: pass evals.exact(), another "
                "evals scorer, or a callable (case, output) -> Score | float | bool"
            )
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigurationError(
            f"two scorers are named {dupes[0]!r}: give one another name with name=... "
            "(evals.scorer(fn, name=...) for a callable)"
        )
    return out


__all__ = [
    "FunctionScorer",
    "Score",
    "Scorer",
    "check_threshold",
    "coerce",
    "resolve_scorers",
    "scorer",
]

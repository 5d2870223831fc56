"""Deterministic scorers: ``exact``, ``contains``, ``regex``, ``json_schema``, ``pydantic``.

Each is named after its factory (``name=`` overrides) and scores 1.0 (passed) or 0.0
(failed, with the reason). A check that needs the case's ``expected`` value and has none
leaves the case unscored: there is nothing to compare with, which is not a failure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from tether.errors import ConfigurationError
from tether.evals.dataset import Case, canonical
from tether.evals.scores import Score, Scorer


class NoExpectedValue(Exception):
    """The case has no ``expected`` value for a scorer that compares with it."""


def as_text(value: Any) -> str:
    """The text a string check reads: a string as is, other values as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def expected_of(case: Case, scorer: str) -> Any:
    if case.expected is None:
        raise NoExpectedValue(
            f"case {case.id!r} has no expected value for {scorer}() to compare with"
        )
    return case.expected


def _verdict(ok: bool, reason: str) -> Score:
    return Score(1.0 if ok else 0.0, ok, "" if ok else reason)


class Exact(Scorer):
    def __init__(
        self, *, ignore_case: bool = False, strip: bool = False, name: str | None = None
    ) -> None:
        self.ignore_case = ignore_case
        self.strip = strip
        super().__init__(name)

    def default_name(self) -> str:
        return "exact"

    def _norm(self, value: Any) -> Any:
        if isinstance(value, str):
            if self.strip:
                value = value.strip()
            if self.ignore_case:
                value = value.casefold()
        return value

    def score(self, case: Case, output: Any) -> Score:
        want = expected_of(case, "exact")
        if isinstance(output, BaseModel):
            output = output.model_dump(mode="json")
        got, exp = self._norm(output), self._norm(want)
        same = got == exp if isinstance(exp, str) else canonical(got) == canonical(exp)
        return _verdict(same, f"expected {as_text(want)[:200]!r}, got {as_text(output)[:200]!r}")

    def describe(self) -> str:
        return f"exact({self.name!r}, ignore_case={self.ignore_case}, strip={self.strip})"


def exact(*, ignore_case: bool = False, strip: bool = False, name: str | None = None) -> Scorer:
    """The output equals the case's ``expected`` (JSON values compared by content)."""
    return Exact(ignore_case=ignore_case, strip=strip, name=name)


class Contains(Scorer):
    def __init__(self, text: str | None, *, ignore_case: bool, name: str | None) -> None:
        if text is not None and not isinstance(text, str):
            raise ConfigurationError(f"contains() takes a string, got {text!r}")
        self.text = text
        self.ignore_case = ignore_case
        super().__init__(name)

    def default_name(self) -> str:
        return "contains"

    def score(self, case: Case, output: Any) -> Score:
        needle = self.text if self.text is not None else as_text(expected_of(case, "contains"))
        hay = as_text(output)
        if self.ignore_case:
            needle, hay = needle.casefold(), hay.casefold()
        found = needle in hay
        return _verdict(found, f"{needle[:200]!r} not found in the output")

    def describe(self) -> str:
        return f"contains({self.name!r}, {self.text!r}, ignore_case={self.ignore_case})"


def contains(
    text: str | None = None, *, ignore_case: bool = False, name: str | None = None
) -> Scorer:
    """The output (as text) contains ``text`` (default: the case's ``expected``);
    case-sensitive unless ``ignore_case=True``."""
    return Contains(text, ignore_case=ignore_case, name=name)


class Regex(Scorer):
    def __init__(self, pattern: str, flags: int, name: str | None) -> None:
        try:
            self.pattern = re.compile(pattern, flags)
        except (re.error, TypeError) as exc:
            raise ConfigurationError(f"regex({pattern!r}) is not a valid pattern: {exc}") from None
        super().__init__(name)

    def default_name(self) -> str:
        return "regex"

    def score(self, case: Case, output: Any) -> Score:
        found = self.pattern.search(as_text(output)) is not None
        return _verdict(found, f"no match for /{self.pattern.pattern}/")

    def describe(self) -> str:
        return f"regex({self.name!r}, {self.pattern.pattern!r}, {self.pattern.flags})"


def regex(pattern: str, *, flags: int = 0, name: str | None = None) -> Scorer:
    """A match of ``pattern`` anywhere in the output (``re.search``)."""
    return Regex(pattern, flags, name)


def _parsed(output: Any) -> tuple[Any, str]:
    """(value, "") for an object or JSON text, or (None, why it is not JSON)."""
    if isinstance(output, BaseModel):
        return output.model_dump(mode="json"), ""
    if isinstance(output, str | bytes):
        try:
            return json.loads(output), ""
        except ValueError as exc:
            return None, f"the output is not JSON ({exc})"
    return output, ""


class JsonSchema(Scorer):
    def __init__(self, schema: Any, name: str | None) -> None:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            schema = schema.model_json_schema()
        if not isinstance(schema, dict):
            raise ConfigurationError(
                f"json_schema() takes a JSON schema (a dict) or a pydantic model class, got "
                f"{schema!r}"
            )
        validator_cls = _jsonschema().validators.validator_for(schema)
        try:
            validator_cls.check_schema(schema)
        except Exception as exc:
            raise ConfigurationError(
                f"json_schema(): the schema is not a valid JSON schema: {getattr(exc, 'message', exc)}"
            ) from None
        self.schema = schema
        self.validator = validator_cls(schema)
        super().__init__(name)

    def default_name(self) -> str:
        return "json_schema"

    def score(self, case: Case, output: Any) -> Score:
        value, problem = _parsed(output)
        if problem:
            return _verdict(False, problem)
        error = next(iter(self.validator.iter_errors(value)), None)
        if error is None:
            return _verdict(True, "")
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return _verdict(False, f"{where}: {error.message}"[:500])

    def describe(self) -> str:
        return f"json_schema({self.name!r}, {canonical(self.schema)})"


def _jsonschema() -> Any:
    try:
        import jsonschema
    except ImportError:
        raise ConfigurationError(
            'json_schema() needs the jsonschema package: pip install "tether[evals]"'
        ) from None
    return jsonschema


def json_schema(schema: Any, *, name: str | None = None) -> Scorer:
    """The output (an object, or JSON text) validates against ``schema`` (a JSON schema
    dict, or a pydantic model class for its schema). Invalid JSON is a failed check."""
    return JsonSchema(schema, name)


class PydanticCheck(Scorer):
    def __init__(self, model: type[BaseModel], name: str | None) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(f"pydantic() takes a pydantic model class, got {model!r}")
        self.model = model
        super().__init__(name)

    def default_name(self) -> str:
        return "pydantic"

    def score(self, case: Case, output: Any) -> Score:
        try:
            if isinstance(output, str | bytes):
                self.model.model_validate_json(output)
            else:
                self.model.model_validate(output)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(root)"
            return _verdict(False, f"{loc}: {first['msg']}"[:500])
        return _verdict(True, "")

    def describe(self) -> str:
        return f"pydantic({self.name!r}, {canonical(self.model.model_json_schema())})"


def pydantic(model: type[BaseModel], *, name: str | None = None) -> Scorer:
    """The output (an object, or JSON text) validates as ``model``."""
    return PydanticCheck(model, name)


__all__ = ["as_text", "contains", "exact", "json_schema", "pydantic", "regex"]

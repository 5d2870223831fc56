"""Encoding of step results, run inputs and outputs to JSON text, with a size limit.

Step results must survive a JSON round trip. Pydantic models (and any type pydantic
knows) are accepted when the step callable declares its return type: the value is dumped
through that type and rebuilt from it on replay.
"""

from __future__ import annotations

import functools
import json
import math
import typing
import warnings
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter

from tether.errors import StepOutputError

DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_encode_str: Any = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)
loads = json.loads


def _dumps(value: Any) -> str:
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return str(_encode_str(value))
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return _encoder(value)


def dumps(value: Any) -> str:
    """Plain JSON text (compact); raises TypeError for what JSON cannot hold."""
    return _dumps(value)


@functools.lru_cache(maxsize=1024)
def _return_adapter(fn: Callable[..., Any]) -> TypeAdapter[Any] | None:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    ann = hints.get("return")
    if ann is None or ann is Any or ann in (int, float, str, bool, dict, list, type(None)):
        return None
    try:
        return TypeAdapter(ann)
    except Exception:
        return None


def return_adapter(fn: Any) -> TypeAdapter[Any] | None:
    annotations = getattr(fn, "__annotations__", None)
    if isinstance(annotations, dict) and "return" not in annotations:
        return None  # the common case (lambdas, unannotated callables): no type lookup
    try:
        return _return_adapter(fn)
    except TypeError:  # unhashable callable
        return None


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def _name(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


def _json_problem(value: Any) -> str | None:
    """What keeps ``value`` from surviving a JSON round trip unchanged, or None."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return None
    if kind is float:
        return None if math.isfinite(value) else f"the float {value!r}"
    if kind is list:
        for item in value:
            problem = _json_problem(item)
            if problem is not None:
                return problem
        return None
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return f"the {type(key).__name__} dict key {key!r} (JSON keys are strings)"
            problem = _json_problem(item)
            if problem is not None:
                return problem
        return None
    return f"a {kind.__name__} ({_describe(value)})"


def encode_result(
    value: Any,
    *,
    what: str | Callable[[], str],
    fn: Any = None,
    limit: int = DEFAULT_MAX_OUTPUT_BYTES,
    replayed: bool = True,
) -> str:
    """Encode a step result (``replayed``) or a run's output. ``what`` names it in errors.

    A replayed value must come back unchanged: plain JSON data, or a value of the step
    callable's declared return type (``-> MyModel``), dumped and rebuilt through it."""
    adapter = return_adapter(fn) if fn is not None else None
    if adapter is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                text = adapter.dump_json(value).decode()
        except Exception as exc:
            raise StepOutputError(
                f"{_name(what)} returned {_describe(value)}, which does not match its declared "
                f"return type and cannot be stored as JSON ({exc}). Return the declared "
                "type, or fix the annotation."
            ) from None
    else:
        problem = _json_problem(value)
        if problem is None:
            text = _dumps(value)
        elif not replayed and isinstance(value, BaseModel):
            text = value.model_dump_json()
        else:
            raise StepOutputError(
                f"{_name(what)} returned {_describe(value)}: {problem} cannot be stored as JSON "
                "and come back unchanged (it would not survive a JSON round trip, so a "
                "replay would see another value). Return JSON data (dict, list, str, int, "
                "float, bool, None; dict keys must be strings), or annotate the step "
                "callable's return type (-> MyModel, -> tuple[int, int], -> datetime) so "
                "that tether stores and rebuilds it through that type."
            )
    if len(text) * 4 > limit or len(text) > limit:
        size = len(text.encode())
        if size > limit:
            raise StepOutputError(
                f"{_name(what)} returned {size:,} bytes of JSON, over the {limit:,}-byte limit. "
                "Store large payloads elsewhere (a file or object store) and return a "
                "reference, or raise the limit with Harness(max_output_bytes=...)."
            )
    return text


def decode_result(text: str | None, fn: Any = None) -> Any:
    """Decode a stored result; rebuild typed values from ``fn``'s return annotation."""
    if text is None:
        return None
    value = loads(text)
    if fn is not None:
        adapter = return_adapter(fn)
        if adapter is not None:
            return adapter.validate_python(value)
    return value

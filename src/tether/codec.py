"""Encoding of step results, run inputs and outputs to JSON text, with a size limit.

Step results must survive a JSON round trip. Pydantic models (and any type pydantic
knows) are accepted when the step callable declares its return type: the value is dumped
through that type and rebuilt from it on replay.
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter

from tether.errors import StepOutputError

DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
loads = json.loads


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
    try:
        return _return_adapter(fn)
    except TypeError:  # unhashable callable
        return None


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def encode_result(
    value: Any,
    *,
    what: str,
    fn: Any = None,
    limit: int = DEFAULT_MAX_OUTPUT_BYTES,
) -> str:
    """Encode a step result or run output. ``what`` names it in errors."""
    try:
        text = _dumps(value)
    except (TypeError, ValueError) as exc:
        adapter = return_adapter(fn) if fn is not None else None
        if adapter is None and isinstance(value, BaseModel):
            adapter = TypeAdapter(type(value))
        if adapter is None:
            raise StepOutputError(
                f"{what} returned {_describe(value)}, which cannot be stored as JSON ({exc}). "
                "Return JSON data (dict, list, str, int, float, bool, None), or a pydantic "
                "model with the step callable's return type annotated (-> MyModel) so that "
                "replay can rebuild it."
            ) from None
        try:
            text = adapter.dump_json(value).decode()
        except Exception as exc2:
            raise StepOutputError(
                f"{what} returned {_describe(value)}, which does not match its declared "
                f"return type and cannot be stored as JSON ({exc2})."
            ) from None
    if len(text) * 4 > limit or len(text) > limit:
        size = len(text.encode())
        if size > limit:
            raise StepOutputError(
                f"{what} returned {size:,} bytes of JSON, over the {limit:,}-byte limit. "
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

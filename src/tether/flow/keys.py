"""Key expressions: a dotted path into an event, or a callable taking the event.

``"event.data.user_id"`` and ``"data.user_id"`` both read ``event.data["user_id"]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tether.errors import ConfigurationError, InvalidEventError
from tether.records import Event

KeyExpr = str | Callable[[Event], Any]

_MISSING = object()
# One part of a dotted path: a data key (letters, digits, _ - : $ @) or a list index.
_PART = re.compile(r"[A-Za-z0-9_\-:$@]+")


def event_dict(event: Event) -> dict[str, Any]:
    return {"name": event.name, "data": event.data, "id": event.id}


def read_path(path: str, root: dict[str, Any]) -> Any:
    """Follow a dotted path; return the ``_MISSING`` sentinel when a part is absent."""
    parts = path.split(".")
    if parts and parts[0] == "event":
        parts = parts[1:]
    value: Any = root
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def check_expr(expr: object, what: str) -> None:
    if isinstance(expr, str):
        if not expr or not all(_PART.fullmatch(p) for p in expr.split(".")):
            hint = re.sub(r"\[['\"]?([^\]'\"]+)['\"]?\]", r".\1", expr)
            suggestion = f" (did you mean {hint!r}?)" if hint != expr and hint else ""
            raise ConfigurationError(
                f"{what}: {expr!r} is not a key path{suggestion}; write a dotted path such "
                "as 'event.data.user_id' (list items by index: 'event.data.items.0') or "
                "pass a callable taking the event"
            )
    elif not callable(expr):
        raise ConfigurationError(
            f"{what}: expected a dotted path string or a callable taking the event, "
            f"got {type(expr).__name__}"
        )


def evaluate_key(expr: KeyExpr, event: Event, *, function_id: str, what: str) -> Any:
    """Evaluate a key on an event; a key that cannot be evaluated is a clear error."""
    if callable(expr) and not isinstance(expr, str):
        try:
            return expr(event)
        except Exception as exc:
            raise InvalidEventError(
                f"function {function_id!r}: the {what} key callable failed on event "
                f"{event.name!r}: {type(exc).__name__}: {exc}"
            ) from exc
    value = read_path(expr, event_dict(event))
    if value is _MISSING:
        raise InvalidEventError(
            f"function {function_id!r}: the {what} key {expr!r} is missing from event "
            f"{event.name!r} (data keys: {sorted(event.data)}). Send the field, or change "
            "the key expression."
        )
    return value


def match_value(path: str, event: Event) -> Any:
    """The value at a ``match=`` path, or None when absent."""
    value = read_path(path, event_dict(event))
    return None if value is _MISSING else value

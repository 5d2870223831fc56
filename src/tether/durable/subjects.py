"""Whose data a run is: a function's ``subject=`` key evaluated on the run's event.

``@th.function(subject="event.data.user_id")`` makes every run of the function belong to
the subject the key names (DESIGN 4b), so ``th.subject(id).forget()`` can find and delete
its runs, steps, attempts and the events that triggered them. The key is written like a
concurrency key (a dotted path or a callable taking the event) and is checked at
registration; its value must be a string or an integer. A ``null`` value means the run
belongs to no subject. Invoked child runs, replays and ``on_failure`` runs inherit the
subject of the run they come from.
"""

from __future__ import annotations

from typing import Any

from tether.errors import ConfigurationError, InvalidEventError
from tether.flow.keys import KeyExpr, evaluate_key
from tether.records import Event

MAX_SUBJECT_CHARS = 256


def subject_problem(value: object) -> str | None:
    """What makes ``value`` unusable as a subject id, or None when it is one."""
    if not isinstance(value, str):
        return f"a subject id is a string, not {type(value).__name__}"
    if not value:
        return "a subject id cannot be empty"
    if len(value) > MAX_SUBJECT_CHARS:
        return f"a subject id has at most {MAX_SUBJECT_CHARS} characters, not {len(value)}"
    if "/" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "a subject id cannot hold '/' or control characters"
    return None


def check_subject_id(value: object) -> str:
    """``value`` when it is a valid subject id, else a ``ConfigurationError`` naming the fix."""
    problem = subject_problem(value)
    if problem is not None:
        raise ConfigurationError(
            f"{value!r} is not a subject id: {problem}. Use an id such as 'user:42' "
            f"(1 to {MAX_SUBJECT_CHARS} characters, no '/')"
        )
    assert isinstance(value, str)
    return value


def subject_of(key: KeyExpr | None, event: Event, function_id: str) -> str | None:
    """The subject a run of ``function_id`` triggered by ``event`` belongs to."""
    if key is None:
        return None
    value: Any = evaluate_key(key, event, function_id=function_id, what="subject")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    problem = subject_problem(value)
    if problem is not None:
        raise InvalidEventError(
            f"function {function_id!r}: the subject key {key!r} gave {value!r} on event "
            f"{event.name!r}: {problem}. Send a string or integer id (or null for no subject)."
        )
    return str(value)

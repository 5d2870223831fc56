"""Hostile ``where=`` / ``if_=`` expressions and key paths (flow/expr.py, flow/keys.py).

Any text, as an expression, either compiles or is a ``ConfigurationError``; a compiled
expression evaluates to a bool on any JSON event, never raising; and no expression runs
code or reaches a Python object's attributes: dunder paths, calls, lambdas, imports,
comprehensions and f-strings are refused when compiled, whatever the event holds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.errors import ConfigurationError, InvalidEventError
from tether.flow import keys
from tether.flow.expr import compile_expr, evaluate
from tether.flow.keys import check_expr, evaluate_key, read_path
from tether.records import Event

FAST = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
events = st.dictionaries(st.text(max_size=6), json_values, max_size=4)

# Fragments a filter is made of, hostile ones included, joined at random.
ATOMS = [
    "event",
    "async",
    "event.data",
    "event.data.x",
    "async.data.x",
    "event.data.items.0",
    "event['data']",
    "event.data['x']",
    "1",
    "'a'",
    "None",
    "True",
    "[1, 2]",
    "(1,)",
    "event.__class__",
    "event.__class__.__mro__",
    "().__class__.__bases__",
    "__import__",
    "__builtins__",
    "open('x')",
    "exec('1')",
    "lambda: 1",
    "[x for x in ()]",
    "f'{event}'",
    "event.data.x()",
    "1 + 1",
    "2 ** 99999",
    "{1: 2}",
    "{1}",
    "*event",
    "event.data[1:2]",
    "'a' * 10**9",
    "import os",
    "x := 1",
    "yield",
    "await x",
    "...",
    "b'x'",
    "1j",
]
OPS = [
    " == ",
    " != ",
    " < ",
    " >= ",
    " in ",
    " not in ",
    " is ",
    " and ",
    " or ",
    " ",
    ".",
    "(",
    ")",
    "[",
    "]",
    ",",
]
expressions = st.lists(st.sampled_from(ATOMS) | st.sampled_from(OPS), min_size=1, max_size=7).map(
    "".join
) | st.text(max_size=40)


@FAST
@given(source=expressions, event=events, incoming=events)
def test_any_text_compiles_or_is_a_configuration_error_and_evaluates_to_a_bool(
    source: str, event: dict[str, Any], incoming: dict[str, Any]
) -> None:
    try:
        compile_expr(source)
    except ConfigurationError:
        return
    trigger = {"name": "e", "data": event, "id": "1"}
    result = evaluate(source, event=trigger, async_={"name": "a", "data": incoming, "id": "2"})
    assert isinstance(result, bool)


CODE = [
    "__import__('os').system('touch /tmp/tether-pwned')",
    "open('/etc/passwd')",
    "().__class__.__bases__[0].__subclasses__()",
    "(lambda: 1)()",
    "[c for c in ().__class__.__bases__]",
    "f'{event}'",
    "event.data.x(1)",
    "1 + 1 == 2",
    "'a' * 10**9 == 'a'",
    "globals()",
    "event.data[0:1] == []",
    "{'k': 1}",
]


@pytest.mark.parametrize("source", CODE)
def test_no_expression_runs_code(source: str) -> None:
    with pytest.raises(ConfigurationError, match="not allowed|not valid"):
        compile_expr(source)


def test_attribute_paths_read_dict_keys_never_python_attributes() -> None:
    data = {"__class__": "stored", "items": [1]}
    assert evaluate("event.data.__class__ == 'stored'", event={"data": data})
    # A dunder path on anything but a dict is missing, not the object's attribute.
    assert not evaluate(
        "event.data.items.__class__ == event.data.items.__class__", event={"data": data}
    )
    assert evaluate("event.name.__len__ == event.name.__len__", event={"name": "e"}) is False
    # It compiles (attribute access is how fields are read) and reads nothing of Python's.
    compile_expr("event.__class__.__init__.__globals__")
    assert not evaluate("event.__class__.__init__.__globals__", event={"data": data})
    assert not evaluate("event.__class__ == None", event={"data": data})


@pytest.mark.parametrize(
    "source",
    [
        "\x00",
        "a\x00b",
        "not " * 5000 + "x",
        "(" * 300 + "1" + ")" * 300,
        "1" * 5000,
        "x" * 3000,
        "[" * 100 + "]" * 100,
        "event.data" + ".a" * 100 + " == 1",
    ],
)
def test_pathological_text_is_a_configuration_error(source: str) -> None:
    with pytest.raises(ConfigurationError):
        compile_expr(source)


paths = st.lists(st.text(max_size=6), min_size=1, max_size=5).map(".".join) | st.text(max_size=30)


@FAST
@given(path=paths, data=events)
def test_key_paths_are_checked_and_read_without_raising(path: str, data: dict[str, Any]) -> None:
    try:
        check_expr(path, "concurrency")
    except ConfigurationError:
        return
    value = read_path(path, {"name": "e", "data": data, "id": "1"})
    if value is not keys._MISSING:
        json.dumps(value)  # what a path reads is part of the JSON event
    try:
        evaluate_key(path, Event("e", data), function_id="f", what="concurrency")
    except InvalidEventError as exc:
        assert "missing" in str(exc)


def test_a_key_callable_that_fails_is_an_invalid_event_error() -> None:
    def boom(event: Event) -> str:
        raise KeyError("user_id")

    with pytest.raises(InvalidEventError, match="key callable failed"):
        evaluate_key(boom, Event("e", {}), function_id="f", what="concurrency")

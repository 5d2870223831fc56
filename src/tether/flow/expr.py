"""A small, safe expression language for trigger filters (``where``) and wait conditions.

Expressions are Python syntax restricted to literals, names, attribute and subscript
access, comparisons, ``and``/``or``/``not`` and ``in``. Names are ``event`` (the
triggering event) and, in ``wait_for_event(if_=...)``, ``async`` (the incoming event),
as in Inngest. Attribute access reads dictionary keys: ``event.data.user.id``.
"""

from __future__ import annotations

import ast
import functools
import operator
from typing import Any

from tether.errors import ConfigurationError

_CMP = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


class _Missing:
    """A field the event does not have: unequal to everything, and false."""

    def __eq__(self, other: object) -> bool:
        return False

    def __bool__(self) -> bool:
        return False

    def __hash__(self) -> int:
        return 0


MISSING = _Missing()
MAX_EXPR_CHARS = 2000
MAX_EXPR_DEPTH = 64


@functools.lru_cache(maxsize=256)
def compile_expr(source: str) -> ast.expr:
    # "async" is a keyword in Python; accept it as a name the way Inngest writes it.
    text = source.replace("async.", "async_.")
    if len(source) > MAX_EXPR_CHARS:
        raise ConfigurationError(
            f"expression {source[:60]!r}... is {len(source)} characters, over {MAX_EXPR_CHARS}: "
            "a filter is a short condition on event fields"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConfigurationError(f"expression {source!r} is not valid: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, deep nesting
        raise ConfigurationError(
            f"expression {source[:60]!r} is not valid: {type(exc).__name__}: {exc}"
        ) from None
    for node in ast.walk(tree):
        if not isinstance(
            node,
            ast.Expression
            | ast.BoolOp
            | ast.And
            | ast.Or
            | ast.UnaryOp
            | ast.Not
            | ast.Compare
            | ast.Name
            | ast.Load
            | ast.Attribute
            | ast.Subscript
            | ast.Constant
            | ast.List
            | ast.Tuple
            | ast.cmpop,
        ):
            raise ConfigurationError(
                f"expression {source!r} uses {type(node).__name__}, which is not allowed: "
                "use comparisons, and/or/not, 'in', literals and event fields"
            )
    if depth(tree) > MAX_EXPR_DEPTH:
        raise ConfigurationError(
            f"expression {source[:60]!r} nests deeper than {MAX_EXPR_DEPTH} levels: write a "
            "flatter condition"
        )
    return tree.body


def depth(tree: ast.AST) -> int:
    """How deep a syntax tree nests, found without recursion (so a deep one is measured
    before anything recursive walks it)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        return value.get(key, MISSING)
    if isinstance(value, list | tuple) and isinstance(key, int) and -len(value) <= key < len(value):
        return value[key]
    return MISSING


def _eval(node: ast.expr, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id.rstrip("_"), MISSING)
    if isinstance(node, ast.Attribute):
        return _get(_eval(node.value, names), node.attr)
    if isinstance(node, ast.Subscript):
        return _get(_eval(node.value, names), _eval(node.slice, names))
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, names) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, names)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_eval(v, names) for v in node.values)
        return any(_eval(v, names) for v in node.values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, names)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, names)
            try:
                ok = _CMP[type(op)](left, right)
            except TypeError:
                return False
            if not ok:
                return False
            left = right
        return True
    raise ConfigurationError(f"unsupported expression node {type(node).__name__}")


def evaluate(source: str, **names: Any) -> bool:
    """Evaluate a filter expression; missing fields compare unequal to everything."""
    return bool(_eval(compile_expr(source), {k.rstrip("_"): v for k, v in names.items()}))

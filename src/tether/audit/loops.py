"""Shapes of error handling: retry loops, retrying handlers, silent handlers, caught classes."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tether.audit.module import ModuleIndex, Scope
from tether.audit.resolve import cached
from tether.audit.shapes import BROAD, NON_RETRIABLE, SLEEPS

if TYPE_CHECKING:
    from tether.audit.analysis import Project

_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, *_LOOPS)
_FILTER_WORDS = (
    "status",
    "code",
    "isinstance",
    "retriable",
    "retryable",
    "transient",
    "should_retry",
)
_STATUS_WORDS = (
    "status",
    "429",
    "500",
    "502",
    "503",
    "504",
    "529",
    ".ok",
    "retry-after",
    "retry_after",
)
_COUNTER_WORDS = ("attempt", "retr", "tries", "success", "done", "ok")


def own_statements(body: list[ast.stmt]) -> list[ast.AST]:
    """Nodes under ``body`` without entering nested loops, functions or classes."""

    def compute() -> list[ast.AST]:
        found: list[ast.AST] = []
        stack: list[ast.AST] = list(reversed(body))
        while stack:
            node = stack.pop()
            found.append(node)
            if not isinstance(node, _NESTED):
                stack.extend(reversed(list(ast.iter_child_nodes(node))))
        return found

    return cached(body, compute)


def calls_in(nodes: list[ast.stmt]) -> Iterator[ast.Call]:
    for stmt in nodes:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                yield node


def leaves(stmts: list[ast.stmt]) -> bool:
    """The block ends with an unconditional raise, return or break."""
    return bool(stmts) and isinstance(stmts[-1], ast.Raise | ast.Return | ast.Break)


def caught(handler: ast.ExceptHandler, ix: ModuleIndex) -> list[str]:
    """Last segments of the caught classes; ``["<bare>"]`` for ``except:``."""
    if handler.type is None:
        return ["<bare>"]
    exprs = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = []
    for expr in exprs:
        text = ix.qualname(expr) or ast.unparse(expr)
        names.append(text.rsplit(".", 1)[-1])
    return names


def non_retriable(names: list[str]) -> list[str]:
    return [n for n in names if n == "<bare>" or n in NON_RETRIABLE or n in BROAD]


def filters(handler: ast.ExceptHandler) -> bool:
    """The handler looks at the error before retrying (status code, type, a predicate)."""
    for node in own_statements(handler.body):
        if isinstance(node, ast.If | ast.IfExp | ast.Match):
            test = node.subject if isinstance(node, ast.Match) else node.test
            text = ast.unparse(test).lower()
            if any(w in text for w in _FILTER_WORDS):
                return True
    return False


def is_sleep(call: ast.Call, ix: ModuleIndex) -> bool:
    return (ix.qualname(call.func) or "") in SLEEPS


def retryable_loop_kind(loop: ast.AST, ix: ModuleIndex) -> bool:
    if isinstance(loop, ast.While):
        return True
    if isinstance(loop, ast.For | ast.AsyncFor):
        it = loop.iter
        if isinstance(it, ast.Call):
            name = ix.qualname(it.func) or ast.unparse(it.func)
            if name in ("range", "itertools.count", "count"):
                return True
        text = ast.unparse(it).lower() + ast.unparse(loop.target).lower()
        return any(w in text for w in ("retr", "attempt", "tries"))
    return False


def success_exit(loop: ast.For | ast.AsyncFor | ast.While) -> bool:
    for node in own_statements(loop.body):
        if isinstance(node, ast.Return | ast.Break):
            return True
    if isinstance(loop, ast.While):
        text = ast.unparse(loop.test).lower()
        return any(w in text for w in _COUNTER_WORDS)
    return False


def status_branch(loop: ast.AST, ix: ModuleIndex) -> ast.If | None:
    """``if resp.status_code == 429: time.sleep(...); continue`` inside the loop."""
    assert isinstance(loop, _LOOPS)
    for node in own_statements(loop.body):
        if isinstance(node, ast.If):
            text = ast.unparse(node.test).lower()
            if not any(w in text for w in _STATUS_WORDS):
                continue
            body = list(own_statements(node.body))
            if any(isinstance(n, ast.Continue) for n in body) or any(
                isinstance(n, ast.Call) and is_sleep(n, ix) for n in body
            ):
                return node
    return None


def find_retry_loops(
    project: Project, ix: ModuleIndex, scope: Scope
) -> Iterator[tuple[ast.AST, int]]:
    for loop in scope.loops:
        if not retryable_loop_kind(loop, ix):
            continue
        if not success_exit(loop):
            continue
        if retry_tries(project, ix, loop) or (
            status_branch(loop, ix) is not None and _reaches(project, list(loop.body))
        ):
            yield loop, loop.lineno


def retry_tries(
    project: Project, ix: ModuleIndex, loop: ast.AST
) -> list[tuple[ast.Try, ast.ExceptHandler]]:
    """The (try, handler) pairs of a loop that retry a model or tool call."""
    assert isinstance(loop, _LOOPS)
    found = []
    for node in own_statements(loop.body):
        if isinstance(node, ast.Try) and _reaches(project, node.body):
            for handler in node.handlers:
                if not leaves(handler.body):
                    found.append((node, handler))
    return found


def _reaches(project: Project, stmts: list[ast.stmt]) -> bool:
    for call in calls_in(stmts):
        facts = project.by_call.get(id(call))
        if facts is not None and project.reaches(facts):
            return True
    return False


def reaches(project: Project, stmts: list[ast.stmt]) -> bool:
    return _reaches(project, stmts)


def silent(handler: ast.ExceptHandler) -> bool:
    """The handler discards the error: only pass, ``...``, continue, or a constant return."""
    for stmt in handler.body:
        if isinstance(stmt, ast.Pass | ast.Continue):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.Return) and (stmt.value is None or _constant(stmt.value)):
            continue
        if isinstance(stmt, ast.Assign) and _constant(stmt.value):
            continue
        return False
    return True


def _constant(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.List | ast.Tuple | ast.Set):
        return all(_constant(e) for e in expr.elts)
    if isinstance(expr, ast.Dict):
        return all(_constant(v) for v in expr.values) and all(
            k is None or _constant(k) for k in expr.keys
        )
    return False

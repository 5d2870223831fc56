"""The rules of context management: message lists that grow in a loop (TH201) or across
calls (TH202) with no budget, trimming or summarisation."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from tether.audit.analysis import Facts, Project
from tether.audit.checks import finding
from tether.audit.model import Finding
from tether.audit.module import ModuleIndex, Scope
from tether.audit.resolve import cached, class_of, own_nodes
from tether.audit.shapes import TRIM_HINTS

_GROW = frozenset({"append", "extend", "insert", "__iadd__"})
_SHRINK = frozenset({"pop", "clear", "remove", "popleft"})


def _key(expr: ast.expr) -> str | None:
    """``messages`` -> "messages"; ``self.history`` -> "self.history"."""
    if isinstance(expr, ast.Name):
        return expr.id
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id in ("self", "cls")
    ):
        return f"self.{expr.attr}"
    return None


def _growth(node: ast.AST) -> tuple[str, ast.AST] | None:
    """A statement that makes a list longer: ``x.append(...)``, ``x += [...]``, ``x = x + [...]``."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _GROW
    ):
        key = _key(node.func.value)
        return (key, node) if key else None
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
        key = _key(node.target)
        if key and isinstance(node.value, ast.List | ast.ListComp | ast.Name | ast.Tuple):
            return key, node
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        key = _key(node.targets[0])
        value = node.value
        if (
            key
            and isinstance(value, ast.BinOp)
            and isinstance(value.op, ast.Add)
            and _key(value.left) == key
        ):
            return key, node
    return None


def _uses(expr: ast.AST, key: str) -> bool:
    return any(_key(n) == key for n in ast.walk(expr) if isinstance(n, ast.Name | ast.Attribute))


def _fed(project: Project, f: Facts, key: str) -> bool:
    """The list reaches this call: a model call's input, or an argument of a function that
    makes one."""
    args = [*f.call.args, *(k.value for k in f.call.keywords)]
    if f.is_model:
        return any(_uses(a, key) for a in args)
    if f.callees and project.reaches(f, tools=False):
        return any(_uses(a, key) for a in args)
    return False


def _trimmed(nodes: list[ast.AST], key: str) -> bool:
    for node in nodes:
        if isinstance(node, ast.Delete) and any(_uses(t, key) for t in node.targets):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _SHRINK and _key(func.value) == key:
                return True
            name = ast.unparse(func).lower()
            args = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(func, ast.Attribute):
                args.append(func.value)
            if any(h in name for h in TRIM_HINTS) and any(_uses(a, key) for a in args):
                return True
        if isinstance(node, ast.Assign) and any(
            _key(t) == key or (isinstance(t, ast.Subscript) and _key(t.value) == key)
            for t in node.targets
        ):
            value = node.value
            if isinstance(value, ast.Subscript) and _key(value.value) == key:
                return True  # messages = messages[-20:]
            if isinstance(value, ast.Call) and not (
                isinstance(value.func, ast.Name) and value.func.id == "list"
            ):
                return True  # messages = trim(messages)
            if isinstance(value, ast.List) and not _uses(value, key):
                pass  # a reset would count, but only inside the loop; handled by caller
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call):
            call = node.left
            if (
                isinstance(call.func, ast.Name)
                and call.func.id == "len"
                and call.args
                and _key(call.args[0]) == key
            ):
                return True
    return False


def context_checks(project: Project) -> Iterator[Finding]:
    for ix in project.modules:
        reported: set[int] = set()
        model_scopes = [s for s in ix.scopes if id(s) in project.model_scopes]
        for scope in model_scopes:
            yield from _in_loops(project, ix, scope, reported)
        if model_scopes:
            yield from _across_calls(project, ix, reported)


def _in_loops(
    project: Project, ix: ModuleIndex, scope: Scope, reported: set[int]
) -> Iterator[Finding]:
    nodes = list(own_nodes(scope.node))
    facts = project.scope_facts.get(id(scope), [])
    seen: set[tuple[int, str]] = set()
    for loop in nodes:
        if not isinstance(loop, ast.For | ast.AsyncFor | ast.While):
            continue
        body = sorted(
            (n for stmt in loop.body for n in ast.walk(stmt)),
            key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)),
        )
        body_ids = {id(n) for n in body}
        for node in body:
            grown = _growth(node)
            if grown is None:
                continue
            key, where = grown
            if (id(loop), key) in seen:
                continue
            fed = [f for f in facts if id(f.call) in body_ids and _fed(project, f, key)]
            if not fed or _trimmed(nodes, key) or _reset_in_loop(loop, key):
                continue
            seen.add((id(loop), key))
            reported.add(id(where))
            yield finding(
                "TH201",
                ix,
                where,
                f"`{key}` grows on every turn of the loop on line {loop.lineno} and goes to the model "
                "with no token budget, trimming or summary.",
            )


def _reset_in_loop(loop: ast.AST, key: str) -> bool:
    """The list is rebuilt at the top of each turn (``messages = [system, user]``)."""
    assert isinstance(loop, ast.For | ast.AsyncFor | ast.While)
    for stmt in loop.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(_key(t) == key for t in stmt.targets)
            and isinstance(stmt.value, ast.List | ast.ListComp)
            and not _uses(stmt.value, key)
        ):
            return True
    return False


def _across_calls(project: Project, ix: ModuleIndex, reported: set[int]) -> Iterator[Finding]:
    """Module-level lists and ``self.x`` lists appended to by functions and sent to a model."""
    module_lists = {
        name
        for name, values in ix.module.assigns.items()
        if any(isinstance(v, ast.List) for v in values)
    }
    grows: dict[tuple[str, str], list[tuple[Scope, ast.AST]]] = {}
    for scope in ix.scopes:
        if scope.kind != "function":
            continue
        cls = class_of(scope)
        for node in own_nodes(scope.node):
            grown = _growth(node)
            if grown is None or id(grown[1]) in reported:
                continue
            key, where = grown
            if key.startswith("self."):
                owner = cls or ""
            elif key in module_lists and key not in scope.assigns and key not in scope.params:
                owner = "<module>"
            else:
                continue
            grows.setdefault((owner, key), []).append((scope, where))
    for (owner, key), places in grows.items():
        related = [
            s
            for s in ix.scopes
            if (owner == "<module>" and s.kind != "lambda") or class_of(s) == owner
        ]
        nodes = (
            [n for s in related for n in own_nodes(s.node)]
            if owner != "<module>"
            else cached(ix.tree, lambda: list(ast.walk(ix.tree)))
        )
        if _trimmed(nodes, key):
            continue
        fed = any(
            _fed(project, f, key) for s in related for f in project.scope_facts.get(id(s), [])
        )
        if not fed:
            continue
        done: set[int] = set()
        for scope, where in sorted(places, key=lambda p: getattr(p[1], "lineno", 0)):
            if id(scope) in done:
                continue
            done.add(id(scope))
            holder = "module-level" if owner == "<module>" else f"`{owner}`'s"
            yield finding(
                "TH202",
                ix,
                where,
                f"{holder} `{key}` grows on every call and goes to the model with no bound: it lives "
                "as long as the process.",
            )

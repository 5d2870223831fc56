"""The rules of failure handling: hand-rolled retries (TH301), sleep backoff (TH302),
retrying non-retriable errors (TH303), bare (TH307) and silent (TH308) handlers."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from tether.audit.analysis import BODY, NONE, STEP, Project
from tether.audit.checks import finding
from tether.audit.loops import (
    calls_in,
    caught,
    filters,
    leaves,
    non_retriable,
    own_statements,
    reaches,
    retry_tries,
    silent,
    status_branch,
)
from tether.audit.model import Finding
from tether.audit.module import ModuleIndex, Scope
from tether.audit.shapes import BACKOFF_DECORATORS, TENACITY_DECORATORS, TENACITY_RETRYING

_BAD_STATUS = (
    "!= 200",
    "not r.ok",
    "not resp.ok",
    "not response.ok",
    ">= 400",
    "> 399",
    ".ok is false",
)


def error_checks(project: Project) -> Iterator[Finding]:
    for ix in project.modules:
        for scope in ix.scopes:
            if scope.kind == "lambda":
                continue
            if id(scope) in project.relevant:
                yield from _loops(project, ix, scope)
            if id(scope) in project.relevant or project.effective(scope) != NONE:
                yield from _handlers(project, ix, scope)
            yield from _decorators(project, ix, scope)
        yield from _retrying_calls(project, ix)


def _loops(project: Project, ix: ModuleIndex, scope: Scope) -> Iterator[Finding]:
    for loop in scope.loops:
        if id(loop) not in project.retry_loops:
            continue
        assert isinstance(loop, ast.For | ast.AsyncFor | ast.While)
        yield finding(
            "TH301",
            ix,
            loop,
            "this loop retries a model or tool call by hand: attempts are not recorded and "
            "the backoff holds the worker.",
        )
        for node in own_statements(loop.body):
            if isinstance(node, ast.Call) and _sleep(ix, node):
                yield _sleep_finding(ix, node)
        for _try, handler in retry_tries(project, ix, loop):
            bad = non_retriable(caught(handler, ix))
            if bad and not filters(handler):
                yield _non_retriable(ix, handler, bad, "this loop")
        branch = status_branch(loop, ix)
        if branch is not None:
            text = ast.unparse(branch.test).lower()
            if any(b in text for b in _BAD_STATUS):
                yield finding(
                    "TH303",
                    ix,
                    branch,
                    f"`if {ast.unparse(branch.test)}` retries every failed status, 400, 401, 403, "
                    "404 and 422 included.",
                )


def _sleep(ix: ModuleIndex, call: ast.Call) -> bool:
    from tether.audit.loops import is_sleep

    return is_sleep(call, ix)


def _sleep_finding(ix: ModuleIndex, call: ast.Call) -> Finding:
    return finding(
        "TH302",
        ix,
        call,
        f"`{ast.unparse(call)}` between attempts blocks the worker and ignores the server's Retry-After.",
    )


def _non_retriable(ix: ModuleIndex, node: ast.AST, bad: list[str], by: str) -> Finding:
    names = ", ".join("a bare except" if b == "<bare>" else b for b in bad)
    return finding(
        "TH303",
        ix,
        node,
        f"{by} retries {names}: 400, 401, 403, 404, 422 and context-length errors fail the "
        "same way on every attempt.",
    )


def _handlers(project: Project, ix: ModuleIndex, scope: Scope) -> Iterator[Finding]:
    durable = project.effective(scope) in (BODY, STEP)
    in_retry_loop = _retry_loop_tries(project, ix, scope)
    for node in scope.trys:
        risky = reaches(project, node.body)
        for handler in node.handlers:
            if handler.type is None and (risky or durable):
                what = "a model or tool call" if risky else "durable function code"
                yield finding(
                    "TH307",
                    ix,
                    handler,
                    f"bare `except:` around {what} also catches KeyboardInterrupt, SystemExit and "
                    "tether's suspension and cancellation.",
                )
                continue
            if not risky:
                continue
            if (id(node), id(handler)) in in_retry_loop:
                continue
            retried_here = _handler_recalls(project, ix, scope, node, handler)
            if retried_here:
                yield finding(
                    "TH301",
                    ix,
                    handler,
                    "this handler retries the call by calling it again: attempts are not recorded.",
                )
                for call in calls_in(handler.body):
                    if _sleep(ix, call):
                        yield _sleep_finding(ix, call)
                bad = non_retriable(caught(handler, ix))
                if bad and not filters(handler):
                    yield _non_retriable(ix, handler, bad, "this handler")
                continue
            names = caught(handler, ix)
            if silent(handler) and any(
                n in ("Exception", "BaseException") or n.endswith("Error") for n in names
            ):
                yield finding(
                    "TH308",
                    ix,
                    handler,
                    f"`except {', '.join(names)}` around a model or tool call discards the error and logs nothing.",
                )


def _retry_loop_tries(project: Project, ix: ModuleIndex, scope: Scope) -> set[tuple[int, int]]:
    found = set()
    for loop in scope.loops:
        if id(loop) in project.retry_loops:
            for try_node, handler in retry_tries(project, ix, loop):
                found.add((id(try_node), id(handler)))
    return found


def _handler_recalls(
    project: Project, ix: ModuleIndex, scope: Scope, try_node: ast.Try, handler: ast.ExceptHandler
) -> bool:
    """``except RateLimitError: time.sleep(5); return ask(prompt)``: the same call again."""
    if leaves(handler.body) and isinstance(handler.body[-1], ast.Raise):
        return False
    tried = {ast.unparse(c.func) for c in calls_in(try_node.body) if _model(project, c)}
    for call in calls_in(handler.body):
        facts = project.by_call.get(id(call))
        if facts is None:
            continue
        if scope in facts.callees or (ast.unparse(call.func) in tried and _model(project, call)):
            return True
    return False


def _model(project: Project, call: ast.Call) -> bool:
    facts = project.by_call.get(id(call))
    return facts is not None and project.reaches(facts, tools=False)


def _reach(project: Project, call: ast.Call) -> bool:
    facts = project.by_call.get(id(call))
    return facts is not None and project.reaches(facts)


def _decorators(project: Project, ix: ModuleIndex, scope: Scope) -> Iterator[Finding]:
    if not (id(scope) in project.reach_model or id(scope) in project.reach_tool):
        return
    for dec in scope.decorators:
        qual = ix.qualname(dec.func if isinstance(dec, ast.Call) else dec) or ""
        if qual in TENACITY_DECORATORS:
            bad = _tenacity_bad(ix, dec)
            if bad:
                yield _non_retriable(ix, dec, bad, "tenacity @retry")
        elif qual in BACKOFF_DECORATORS and isinstance(dec, ast.Call):
            bad = _backoff_bad(ix, dec)
            if bad:
                yield _non_retriable(ix, dec, bad, "@backoff.on_exception")


def _retrying_calls(project: Project, ix: ModuleIndex) -> Iterator[Finding]:
    """``for attempt in Retrying(...)`` and ``Retrying(...)(fn)`` around model or tool calls."""
    for scope in ix.scopes:
        if id(scope) not in project.relevant:
            continue
        nodes: list[ast.AST] = [*scope.loops, *(site.call for site in scope.sites)]
        for node in nodes:
            if isinstance(node, ast.For | ast.AsyncFor) and isinstance(node.iter, ast.Call):
                if (ix.qualname(node.iter.func) or "") in TENACITY_RETRYING and reaches(
                    project, node.body
                ):
                    bad = _tenacity_bad(ix, node.iter)
                    if bad:
                        yield _non_retriable(ix, node.iter, bad, "tenacity Retrying")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and node.args:
                inner = node.func
                if (ix.qualname(inner.func) or "") in TENACITY_RETRYING:
                    facts = project.by_call.get(id(node))
                    targets = facts.callees if facts else []
                    if (
                        any(
                            id(t) in project.reach_model or id(t) in project.reach_tool
                            for t in _arg_targets(project, ix, node)
                        )
                        or targets
                    ):
                        bad = _tenacity_bad(ix, inner)
                        if bad:
                            yield _non_retriable(ix, inner, bad, "tenacity Retrying")


def _arg_targets(project: Project, ix: ModuleIndex, call: ast.Call) -> list[Scope]:
    arg = call.args[0]
    found = []
    for ref in ix.refs:
        if ref.node is arg:
            found.extend(project.function(ix, ref))
    return found


def _tenacity_bad(ix: ModuleIndex, call: ast.expr) -> list[str]:
    if not isinstance(call, ast.Call):
        return ["every exception"]  # bare @retry
    predicate = next((k.value for k in call.keywords if k.arg == "retry"), None)
    if predicate is None:
        return ["every exception"]
    bad: list[str] = []
    for node in ast.walk(predicate):
        if isinstance(node, ast.Call):
            name = (ix.qualname(node.func) or ast.unparse(node.func)).rsplit(".", 1)[-1]
            if name == "retry_if_exception_type":
                if not node.args:
                    bad.append("every exception")
                    continue
                arg = node.args[0]
                exprs = arg.elts if isinstance(arg, ast.Tuple | ast.List) else [arg]
                names = [(ix.qualname(e) or ast.unparse(e)).rsplit(".", 1)[-1] for e in exprs]
                bad.extend(non_retriable(names))
    return bad


def _backoff_bad(ix: ModuleIndex, call: ast.Call) -> list[str]:
    if any(k.arg == "giveup" for k in call.keywords) or len(call.args) < 2:
        return []
    arg = call.args[1]
    exprs = arg.elts if isinstance(arg, ast.Tuple | ast.List) else [arg]
    names = [(ix.qualname(e) or ast.unparse(e)).rsplit(".", 1)[-1] for e in exprs]
    return non_retriable(names)

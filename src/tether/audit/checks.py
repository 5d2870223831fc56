"""The rules of orchestration (TH1xx), timeouts and stacked retries (TH304-TH306) and
observability (TH401): everything decided at a model or tool call site."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from tether.audit.analysis import BODY, NONE, STEP, Facts, Project
from tether.audit.model import Finding
from tether.audit.module import ModuleIndex, Scope
from tether.audit.resolve import Client
from tether.audit.rules import RULES

_PROVIDER = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "gemini": "google-genai",
    "litellm": "LiteLLM",
    "langchain": "LangChain",
}


def finding(rule: str, ix: ModuleIndex, node: ast.AST, message: str) -> Finding:
    meta = RULES[rule]
    line = getattr(node, "lineno", 1)
    return Finding(
        rule=rule,
        area=meta.area,
        path=ix.path,
        line=line,
        col=getattr(node, "col_offset", 0) + 1,
        message=message,
        fix=meta.fix,
        level=meta.level,
        snippet=ix.line_text(line).strip(),
    )


def _what(f: Facts) -> str:
    if f.model_http:
        return "an HTTP request to a model API"
    assert f.model is not None
    text = ast.unparse(f.call.func)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"`{text}(...)` ({_PROVIDER.get(f.model.kind, f.model.kind)})"


def _owner(scope: Scope) -> Scope:
    while scope.kind == "lambda" and scope.parent is not None and scope.step is None:
        scope = scope.parent
    return scope


def _function_scope(scope: Scope) -> Scope:
    while scope.kind == "lambda" and scope.parent is not None:
        scope = scope.parent
    return scope


def call_checks(project: Project) -> Iterator[Finding]:
    for f in project.facts:
        if f.model is not None and f.model.tether:
            continue
        if f.is_model:
            yield from _model_site(project, f)
        elif f.http is not None:
            yield from _http_timeout(f)
    yield from _tool_sites(project)
    yield from _workflows(project)


def _model_site(project: Project, f: Facts) -> Iterator[Finding]:
    durability = project.effective(f.scope)
    what = _what(f)
    if durability == NONE:
        yield finding(
            "TH101",
            f.ix,
            f.call,
            f"{what} runs outside any durable step: a failure after it loses the answer and its cost.",
        )
    elif durability == BODY:
        name = _function_scope(f.scope).name
        yield finding(
            "TH101",
            f.ix,
            f.call,
            f"{what} sits in the body of durable function `{name}` but outside a step: "
            "it runs again on every resume.",
        )
    client = f.http.client if f.model_http and f.http else (f.model.client if f.model else None)
    yield from _timeout(f, client, what)
    if f.model is not None and f.model.client is not None:
        yield from _stacked(project, f, f.model.client, what)
    if durability != STEP and durability != BODY and not project.observed(f):
        yield finding(
            "TH401",
            f.ix,
            f.call,
            f"{what} has no span, log line or metric around it, and its client is not instrumented.",
        )


def _kw(call: ast.Call, names: tuple[str, ...]) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg in names:
            return kw.value
    return None


def _is_none(expr: ast.expr | None) -> bool:
    return isinstance(expr, ast.Constant) and expr.value is None


def _mentions_timeout(expr: ast.expr, ix: ModuleIndex, depth: int = 0) -> bool:
    """A ``timeout`` keyword or dict key somewhere inside (HttpOptions, model_list ...)."""
    for node in ast.walk(expr):
        if (
            isinstance(node, ast.keyword)
            and node.arg in ("timeout", "request_timeout")
            and not _is_none(node.value)
        ):
            return True
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value in ("timeout", "request_timeout"):
                    return True
        if isinstance(node, ast.Name) and depth < 2:
            for value in ix.module.assigns.get(node.id, []):
                if _mentions_timeout(value, ix, depth + 1):
                    return True
    return False


def has_timeout(f: Facts, client: Client | None) -> bool | None:
    """True/False when known; None when the scanner cannot tell (``**kwargs``, a parameter)."""
    call, ix = f.call, f.ix
    if any(kw.arg is None for kw in call.keywords):
        return None
    if f.http is not None and f.model_http:
        kind = f.http.kind
        value = _kw(call, ("timeout",))
        if value is not None:
            return not _is_none(value)
        if client is not None:
            if client.opaque:
                return None
            if "timeout" in client.kwargs:
                return not _is_none(client.kwargs["timeout"])
        return kind.default_timeout
    if client is None or not client.known or client.opaque:
        return None
    kind = client.kind
    if kind.name == "gemini":
        options = _kw(call, ("config",))
        if options is not None and _mentions_timeout(options, ix):
            return True
        options = client.kwargs.get("http_options")
        return options is not None and _mentions_timeout(options, ix)
    value = _kw(call, kind.timeout_kwargs)
    if value is not None:
        return not _is_none(value)
    for name in kind.timeout_kwargs:
        if name in client.kwargs:
            return not _is_none(client.kwargs[name])
    if kind.name == "litellm":
        if "model_list" in client.kwargs and _mentions_timeout(client.kwargs["model_list"], ix):
            return True
        if any(k in ix.attr_assigns for k in ("litellm.request_timeout", "litellm.timeout")):
            return True
    if kind.name == "openai" and "openai.timeout" in ix.attr_assigns:
        return True
    return kind.default_timeout


def _timeout(f: Facts, client: Client | None, what: str) -> Iterator[Finding]:
    if has_timeout(f, client) is not False:
        return
    if f.model_http:
        detail = (
            "requests waits forever" if f.http and f.http.kind.name == "requests" else "no timeout"
        )
        yield finding("TH304", f.ix, f.call, f"{what} has no timeout ({detail}).")
        return
    assert client is not None
    where = (
        f" (client built on line {client.line}{' of ' + client.path if client.path else ''})"
        if client.line
        else ""
    )
    default = {
        "openai": "the SDK waits up to 600 s per attempt",
        "anthropic": "the SDK waits up to 600 s per attempt",
        "litellm": "LiteLLM waits up to 600 s",
        "langchain": "the client waits up to 600 s per attempt",
        "gemini": "no timeout is set on the client",
    }.get(client.kind.name, "no timeout")
    yield finding("TH304", f.ix, f.call, f"{what} has no timeout{where}: {default}.")


def sdk_retries(f: Facts, client: Client) -> int | None:
    call = f.call
    if any(kw.arg is None for kw in call.keywords) or client.opaque or not client.known:
        return None
    kind = client.kind
    if kind.name == "gemini":
        options = client.kwargs.get("http_options")
        if options is not None and any(
            isinstance(n, ast.keyword) and n.arg == "retry_options" for n in ast.walk(options)
        ):
            return 1
        return 0
    value = _kw(call, kind.retry_kwargs) or next(
        (client.kwargs[k] for k in kind.retry_kwargs if k in client.kwargs), None
    )
    if value is None and kind.name == "litellm" and "litellm.num_retries" in f.ix.attr_assigns:
        value = f.ix.attr_assigns["litellm.num_retries"][-1]
    if value is None:
        return kind.default_retries
    if isinstance(value, ast.Constant) and isinstance(value.value, int):
        return value.value
    return None


def _stacked(project: Project, f: Facts, client: Client, what: str) -> Iterator[Finding]:
    retries = sdk_retries(f, client)
    if not retries:
        return
    origin = project.site_retry(f.ix, f.scope, f.site.where.loops)
    if origin is None and client.app_retry:
        from tether.audit.analysis import Origin

        origin = Origin("LangChain .with_retry()", client.app_retry, f.ix.path)
    if origin is None:
        return
    where = f"line {origin.line}" if origin.path == f.ix.path else f"{origin.path}:{origin.line}"
    yield finding(
        "TH306",
        f.ix,
        f.call,
        f"{what} is retried by {origin.what} ({where}) and by its client "
        f"({retries} SDK retries): attempts multiply.",
    )


def _http_timeout(f: Facts) -> Iterator[Finding]:
    http = f.http
    assert http is not None
    call = f.call
    if any(kw.arg is None for kw in call.keywords):
        return
    value = _kw(call, ("timeout",))
    if value is not None:
        if _is_none(value):
            yield finding(
                "TH305",
                f.ix,
                call,
                f"`{ast.unparse(call.func)}(...)` sets timeout=None: it can wait forever.",
            )
        return
    if http.client is not None:
        if http.client.opaque:
            return
        if "timeout" in http.client.kwargs:
            if _is_none(http.client.kwargs["timeout"]):
                yield finding(
                    "TH305",
                    f.ix,
                    call,
                    f"`{ast.unparse(call.func)}(...)` uses a client built with timeout=None.",
                )
            return
    if not http.kind.default_timeout:
        yield finding(
            "TH305",
            f.ix,
            call,
            f"`{ast.unparse(call.func)}(...)` has no timeout: requests waits forever.",
        )


def _tool_sites(project: Project) -> Iterator[Finding]:
    for ix in project.modules:
        for scope in ix.scopes:
            facts = project.scope_facts.get(id(scope), [])
            if id(_owner(scope)) not in project.reach_model:
                continue
            if project.effective(scope) == STEP:
                continue
            for f in facts:
                if f.is_model or f.step is not None:
                    continue
                tool = f.is_tool or any(
                    id(c) in project.reach_tool and id(c) not in project.reach_model
                    for c in f.callees
                )
                if tool:
                    text = ast.unparse(f.call.func)
                    yield finding(
                        "TH102",
                        ix,
                        f.call,
                        f"`{text[:60]}(...)` is a tool call in a model workflow, outside a durable step: "
                        "a failure later repeats or loses it.",
                    )


def _workflows(project: Project) -> Iterator[Finding]:
    for ix in project.modules:
        for scope in ix.scopes:
            if scope.kind == "lambda" or project.effective(scope) != NONE:
                continue
            count, models = 0, 0
            batch: ast.AST | None = None
            first: ast.AST | None = None
            for f in project.scope_facts.get(id(scope), []):
                if f.model is not None and f.model.tether:
                    continue
                if f.step is not None or not project.reaches(f) or f.site.where.handlers:
                    continue  # calls in except handlers are another path, not the chain
                loops = [x for x in f.site.where.loops if id(x) not in project.retry_loops]
                count += 2 if loops else 1
                model = project.reaches(f, tools=False)
                models += 1 if model else 0
                if model and batch is None:
                    batch = next((x for x in loops if _over_data(x, f.ix)), None)
                if first is None:
                    first = loops[0] if loops else f.call
            if (count >= 3 and models) or batch is not None:
                node: ast.AST = scope.node if scope.kind == "function" else first  # type: ignore[assignment]
                name = "the module's top level" if scope.kind == "module" else f"`{scope.name}`"
                if count >= 3:
                    what = (
                        f"{name} chains {count} model or tool calls (a call in a loop counts twice) "
                        "with no checkpoint: a failure restarts all of them."
                    )
                else:
                    what = (
                        f"{name} calls a model for every item of the loop on line "
                        f"{getattr(batch, 'lineno', 0)} with no checkpoint: a failure restarts the batch."
                    )
                yield finding("TH103", ix, node, what)


def _over_data(loop: ast.AST, ix: ModuleIndex) -> bool:
    """A batch: ``for row in rows`` (not ``range``, not a retry, not a while loop)."""
    from tether.audit.loops import retryable_loop_kind

    return isinstance(loop, ast.For | ast.AsyncFor) and not retryable_loop_kind(loop, ix)

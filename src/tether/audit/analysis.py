"""Facts about a scanned code base, across modules: what each call site is, which functions
run inside durable steps, which are retried by the application, which reach a model or a tool.

Three fixed points over the call graph (functions referenced by name, ``self.method``,
imports between scanned modules, and registries such as ``TOOLS = {"search": search}``):
- durability: a function runs inside a durable step when every reference to it does (it is a
  step's callable, or referenced only from such functions); a ``@th.function`` body is
  durable but not a step; a function nobody references is an entry point (not durable);
- application retry: a function is retried when any reference to it is (a tenacity/backoff
  decorator, ``Retrying(...)(f)``, a retry loop, a tether step's own ``Retry``);
- reach: a function reaches a model (or a tool) when it calls one, directly or through others.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field

from tether.audit.module import ModuleIndex, Ref, Scope, Site, StepCall
from tether.audit.resolve import HttpCall, ModelCall, Resolver, own_nodes
from tether.audit.shapes import (
    BACKOFF_DECORATORS,
    INSTRUMENTATION_ATTRS,
    INSTRUMENTATION_CALLS,
    INSTRUMENTATION_IMPORTS,
    LOG_METHODS,
    METRIC_METHODS,
    SLEEPS,
    SPAN_HINTS,
    TENACITY_DECORATORS,
    TENACITY_RETRYING,
)

NONE, BODY, STEP = 0, 1, 2
_METRIC_NAMES = (
    "counter",
    "histogram",
    "metric",
    "gauge",
    "latency",
    "token",
    "statsd",
    "meter",
    "duration",
)
_SPAN_METHODS = frozenset(
    {
        "start_as_current_span",
        "start_span",
        "span",
        "start_transaction",
        "start_observation",
        "trace",
    }
)


@dataclass(eq=False)
class Facts:
    """What one call site is."""

    site: Site
    ix: ModuleIndex
    model: ModelCall | None = None
    http: HttpCall | None = None
    model_http: bool = False  # an HTTP request to a model API
    dispatch: bool = False
    sleep: bool = False
    step: StepCall | None = None
    observe: str | None = None  # "log" | "span" | "metric"
    callees: list[Scope] = field(default_factory=list)

    @property
    def call(self) -> ast.Call:
        return self.site.call

    @property
    def scope(self) -> Scope:
        return self.site.where.scope

    @property
    def is_model(self) -> bool:
        return (self.model is not None) or self.model_http

    @property
    def is_tool(self) -> bool:
        return (self.http is not None and not self.model_http) or self.dispatch


@dataclass(frozen=True)
class Origin:
    """Where an application retry comes from, for messages."""

    what: str
    line: int
    path: str


class Project:
    def __init__(self, modules: list[ModuleIndex]) -> None:
        self.modules = modules
        self._by_name: dict[str, ModuleIndex | None] = {}
        for ix in modules:
            parts = ix.name.split(".")
            for i in range(len(parts)):
                key = ".".join(parts[i:])
                self._by_name[key] = (
                    None if key in self._by_name and self._by_name[key] is not ix else ix
                )
        self.resolvers = {id(ix): Resolver(ix, self.foreign) for ix in modules}
        self.facts: list[Facts] = []
        self.by_call: dict[int, Facts] = {}
        self.scope_facts: dict[int, list[Facts]] = {}
        self.scope_module: dict[int, ModuleIndex] = {}
        self.refs_to: dict[int, list[Ref]] = {}
        self.context: dict[int, int] = {}
        self.retried: dict[int, Origin] = {}
        self.reach_model: set[int] = set()
        self.reach_tool: set[int] = set()
        self.retry_loops: dict[int, Origin] = {}  # id(loop) -> origin
        self.instrumented: set[int] = set()  # id(ix)
        self.decorated: dict[int, str] = {}  # id(scope) -> "body" | "step"
        self.relevant: set[int] = set()  # scopes with a model or tool call (direct or not)
        self.model_scopes: set[int] = set()  # scopes with a model call (direct or not)
        self._build()

    # -- cross-module lookups ----------------------------------------------------------

    def module_of(self, qual: str) -> tuple[ModuleIndex, str] | None:
        if "." not in qual:
            return None
        module, attr = qual.rsplit(".", 1)
        ix = self._by_name.get(module)
        return (ix, attr) if ix is not None else None

    def foreign(self, qual: str) -> tuple[ModuleIndex, ast.expr] | None:
        found = self.module_of(qual)
        if found is None:
            return None
        ix, attr = found
        values = ix.module.assigns.get(attr)
        if values:
            return ix, values[-1]
        if attr in ix.functions:
            return ix, ast.Name(attr, ast.Load())
        return None

    def function(self, ix: ModuleIndex, ref: Ref) -> list[Scope]:
        kind, name = ref.target
        if kind == "local":
            scope = ix.functions.get(name)
            return [scope] if scope else []
        if kind == "container":
            return [ix.functions[n] for n in ix.containers.get(name, []) if n in ix.functions]
        found = self.module_of(name)
        if found is None:
            return []
        other, attr = found
        if attr in other.functions:
            return [other.functions[attr]]
        return [other.functions[n] for n in other.containers.get(attr, []) if n in other.functions]

    # -- building ----------------------------------------------------------------------

    def _build(self) -> None:
        for ix in self.modules:
            resolver = self.resolvers[id(ix)]
            callees: dict[int, list[Scope]] = {}
            for ref in ix.refs:
                targets = self.function(ix, ref)
                for target in targets:
                    self.refs_to.setdefault(id(target), []).append(ref)
                if ref.called:
                    callees.setdefault(id(ref.node), []).extend(targets)
            for scope in ix.scopes:
                self.scope_module[id(scope)] = ix
                facts = [self._facts(ix, resolver, site, callees) for site in scope.sites]
                self.scope_facts[id(scope)] = facts
                self.facts.extend(facts)
                kind = self._decorator_kind(ix, scope)
                if kind:
                    self.decorated[id(scope)] = kind
            if self._instrumented(ix):
                self.instrumented.add(id(ix))
        self.by_call = {id(f.call): f for f in self.facts}
        self._durability()
        self._reach()
        for ix in self.modules:
            for scope in ix.scopes:
                facts = self.scope_facts[id(scope)]
                if any(self.reaches(f) for f in facts):
                    self.relevant.add(id(scope))
                if any(self.reaches(f, tools=False) for f in facts):
                    self.model_scopes.add(id(scope))
        self._retry_loops()
        self._retries()

    def _facts(
        self, ix: ModuleIndex, resolver: Resolver, site: Site, callees: dict[int, list[Scope]]
    ) -> Facts:
        call, scope = site.call, site.where.scope
        facts = Facts(site, ix, callees=callees.get(id(call.func), []))
        facts.step = _step(call)
        if facts.step is not None:
            if facts.step.method == "llm":
                facts.model = ModelCall("tether", None, call, tether=True)
            return facts
        facts.model = resolver.model_call(call, scope)
        if facts.model is None:
            facts.http = resolver.http_call(call, scope)
            if facts.http is not None:
                facts.model_http = resolver.is_model_url(facts.http, scope)
            else:
                facts.dispatch = resolver.is_dispatch(call, scope)
        qual = ix.qualname(call.func) or ""
        facts.sleep = qual in SLEEPS
        facts.observe = _observe(ix, call, qual)
        return facts

    def _decorator_kind(self, ix: ModuleIndex, scope: Scope) -> str | None:
        for dec in scope.decorators:
            target = dec.func if isinstance(dec, ast.Call) else dec
            qual = ix.qualname(target) or ""
            if qual in ("temporalio.activity.defn", "dbos.DBOS.step", "dbos.DBOS.transaction"):
                return "step"
            if qual in ("dbos.DBOS.workflow", "temporalio.workflow.run"):
                return "body"
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                if target.attr == "function" and self._is_harness(ix, target.value.id):
                    return "body"
                if target.attr == "create_function" and ix.imports_module("inngest"):
                    return "body"
        return None

    def _is_harness(self, ix: ModuleIndex, name: str) -> bool:
        values = ix.module.assigns.get(name, [])
        for value in values:
            if isinstance(value, ast.Call):
                qual = ix.qualname(value.func) or ""
                return qual.startswith("tether") or qual.endswith("Harness")
        if name in ix.imports and not values:
            found = self.foreign(ix.imports[name])
            if found and isinstance(found[1], ast.Call):
                qual = found[0].qualname(found[1].func) or ""
                return qual.startswith("tether") or qual.endswith("Harness")
        return ix.imports_module("tether")

    def _instrumented(self, ix: ModuleIndex) -> bool:
        if any(q.startswith(INSTRUMENTATION_IMPORTS) for q in ix.imports.values()):
            return True
        if any(attr in INSTRUMENTATION_ATTRS for attr in ix.attr_assigns):
            return True
        for site in ix.module.sites:
            text = ast.unparse(site.call.func)
            if any(hint in text for hint in INSTRUMENTATION_CALLS):
                return True
        return False

    # -- fixed points ------------------------------------------------------------------

    def effective(self, scope: Scope) -> int:
        """How durable the code of a scope is: STEP, BODY or NONE."""
        while scope.kind == "lambda":
            if scope.step is not None:
                return STEP
            assert scope.parent is not None
            scope = scope.parent
        if scope.kind == "module":
            return NONE
        return self.context.get(id(scope), NONE)

    def _free_functions(self) -> list[Scope]:
        return [s for ix in self.modules for s in ix.scopes if s.kind == "function"]

    def _owner(self, scope: Scope) -> Scope | None:
        """The function whose durability (and retries) code in this scope shares."""
        while scope.kind == "lambda":
            if scope.step is not None:
                return None
            assert scope.parent is not None
            scope = scope.parent
        return None if scope.kind == "module" else scope

    def _watchers(self, free: list[Scope]) -> dict[int, list[Scope]]:
        """Function -> the functions it references (to revisit when it changes)."""
        watchers: dict[int, list[Scope]] = {}
        for target in free:
            for ref in self.refs_to.get(id(target), []):
                owner = self._owner(ref.where.scope)
                if owner is not None and owner is not target:
                    watchers.setdefault(id(owner), []).append(target)
        return watchers

    def _durability(self) -> None:
        free = []
        for scope in self._free_functions():
            kind = self.decorated.get(id(scope))
            if kind == "step":
                self.context[id(scope)] = STEP
            elif kind == "body":
                self.context[id(scope)] = BODY
            else:
                others = [r for r in self.refs_to.get(id(scope), []) if r.where.scope is not scope]
                self.context[id(scope)] = STEP if others else NONE
                free.append(scope)
        watchers = self._watchers(free)
        free_ids = {id(s) for s in free}
        queue = deque(free)
        while queue:
            scope = queue.popleft()
            current = self.context[id(scope)]
            if current == NONE or id(scope) not in free_ids:
                continue
            refs = [r for r in self.refs_to.get(id(scope), []) if r.where.scope is not scope]
            value = min((STEP if r.step else self.effective(r.where.scope)) for r in refs)
            if value < current:
                self.context[id(scope)] = value
                queue.extend(watchers.get(id(scope), []))

    def _reach(self) -> None:
        callers: dict[int, set[int]] = {}
        for f in self.facts:
            owner = id(_function_of(f.scope))
            if f.is_model:
                self.reach_model.add(owner)
            if f.is_tool:
                self.reach_tool.add(owner)
            for callee in f.callees:
                callers.setdefault(id(callee), set()).add(owner)
        for reached in (self.reach_model, self.reach_tool):
            queue = deque(reached)
            while queue:
                for caller in callers.get(queue.popleft(), ()):
                    if caller not in reached:
                        reached.add(caller)
                        queue.append(caller)

    def reaches(self, f: Facts, tools: bool = True) -> bool:
        """A model (or tool) call, or a call to a function that makes one."""
        if f.is_model or (tools and f.is_tool):
            return True
        for callee in f.callees:
            if id(callee) in self.reach_model or (tools and id(callee) in self.reach_tool):
                return True
        return False

    def _retry_loops(self) -> None:
        from tether.audit.loops import find_retry_loops

        for ix in self.modules:
            for scope in ix.scopes:
                if id(scope) not in self.relevant:
                    continue
                for loop, line in find_retry_loops(self, ix, scope):
                    self.retry_loops[id(loop)] = Origin("the retry loop", line, ix.path)

    def _retries(self) -> None:
        for ix in self.modules:
            for scope in ix.scopes:
                origin = self._decorator_retry(ix, scope)
                if origin:
                    self.retried[id(scope)] = origin
        free = self._free_functions()
        watchers = self._watchers(free)
        queue = deque(free)
        while queue:
            scope = queue.popleft()
            if id(scope) in self.retried:
                continue
            for ref in self.refs_to.get(id(scope), []):
                if ref.where.scope is scope:
                    continue
                origin = self._ref_retry(self.scope_module[id(ref.where.scope)], ref)
                if origin:
                    self.retried[id(scope)] = origin
                    queue.extend(watchers.get(id(scope), []))
                    break

    def _decorator_retry(self, ix: ModuleIndex, scope: Scope) -> Origin | None:
        for dec in scope.decorators:
            target = dec.func if isinstance(dec, ast.Call) else dec
            qual = ix.qualname(target) or ""
            if qual in TENACITY_DECORATORS:
                return Origin("tenacity @retry", dec.lineno, ix.path)
            if qual in BACKOFF_DECORATORS:
                return Origin("@backoff.on_exception", dec.lineno, ix.path)
        return None

    def _ref_retry(self, ix: ModuleIndex, ref: Ref) -> Origin | None:
        if ref.step is not None:
            return step_retry(ref.step, ix)
        if ref.retry_wrapper is not None:
            return Origin("tenacity Retrying(...)", ref.retry_wrapper.lineno, ix.path)
        return self.site_retry(ix, ref.where.scope, ref.where.loops)

    def site_retry(
        self, ix: ModuleIndex, scope: Scope, loops: tuple[ast.stmt, ...]
    ) -> Origin | None:
        """The application retry around code at this place, if any."""
        for loop in loops:
            if id(loop) in self.retry_loops:
                return self.retry_loops[id(loop)]
            if (
                isinstance(loop, ast.For | ast.AsyncFor)
                and isinstance(loop.iter, ast.Call)
                and (ix.qualname(loop.iter.func) or "") in TENACITY_RETRYING
            ):
                return Origin("tenacity Retrying(...)", loop.lineno, ix.path)
        current: Scope | None = scope
        while current is not None and current.kind != "module":
            if current.kind == "lambda" and current.step is not None:
                return step_retry(current.step, ix)
            if id(current) in self.retried:
                return self.retried[id(current)]
            if current.kind == "function":
                break
            current = current.parent
        return None

    def observed(self, f: Facts) -> bool:
        """A span, log line or metric around the call (its function or an enclosing one)."""
        if id(f.ix) in self.instrumented:
            return True
        langchain = f.model is not None and f.model.kind == "langchain"
        if any(k.arg == "callbacks" or (langchain and k.arg == "config") for k in f.call.keywords):
            return True
        scope: Scope | None = f.scope
        while scope is not None:
            if any(x.observe for x in self.scope_facts.get(id(scope), [])):
                return True
            for dec in scope.decorators:
                if any(h in ast.unparse(dec).lower() for h in SPAN_HINTS):
                    return True
            if (
                scope.kind == "function"
                and scope.parent is not None
                and scope.parent.kind == "module"
            ):
                break
            scope = scope.parent
        return False


def step_retry(step: StepCall, ix: ModuleIndex) -> Origin | None:
    if step.options is not None:
        for kw in step.options.keywords:
            if kw.arg == "retries" and isinstance(kw.value, ast.Call):
                for inner in kw.value.keywords:
                    if (
                        inner.arg == "max_attempts"
                        and isinstance(inner.value, ast.Constant)
                        and inner.value.value == 1
                    ):
                        return None
    return Origin("the tether step's Retry (4 attempts by default)", step.call.lineno, ix.path)


def _step(call: ast.Call) -> StepCall | None:
    from tether.audit.module import step_call

    return step_call(call)


def _function_of(scope: Scope) -> Scope:
    """Lambdas belong to the function around them (for reach)."""
    while scope.kind == "lambda" and scope.parent is not None and scope.step is None:
        scope = scope.parent
    return scope


def _observe(ix: ModuleIndex, call: ast.Call, qual: str) -> str | None:
    func = call.func
    if qual.startswith(("logging.", "structlog.", "loguru.")):
        return "log" if qual.rsplit(".", 1)[-1] in LOG_METHODS else None
    if qual.startswith("logfire."):
        return "span" if qual.endswith((".span", ".instrument")) else "log"
    if not isinstance(func, ast.Attribute):
        return None
    receiver = ""
    if isinstance(func.value, ast.Name):
        receiver = func.value.id.lower()
    elif isinstance(func.value, ast.Attribute):
        receiver = func.value.attr.lower()
    elif isinstance(func.value, ast.Call):
        receiver = ast.unparse(func.value.func).lower()
    if func.attr in LOG_METHODS and "log" in receiver:
        return "log"
    if func.attr in _SPAN_METHODS and (
        "trac" in receiver or "span" in receiver or "langfuse" in receiver or "sentry" in receiver
    ):
        return "span"
    if func.attr in METRIC_METHODS and any(h in receiver for h in _METRIC_NAMES):
        return "metric"
    return None


def own_statements(node: ast.AST) -> list[ast.AST]:
    return list(own_nodes(node))

"""One module's index: its imports, scopes, assignments, and every call site with what
surrounds it (loops, try blocks, with blocks, the enclosing function).

Nothing here decides a finding; ``tether.audit.analysis`` reads the index.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Literal

from tether.audit.shapes import STEP_METHODS

_DEF = re.compile(r"\bdef\s+([A-Za-z_]\w*)")
TryPart = Literal["body", "handler", "else", "finally"]
AnyFunction = ast.FunctionDef | ast.AsyncFunctionDef
Loop = ast.For | ast.AsyncFor | ast.While


@dataclass(eq=False)
class Scope:
    """A function, a lambda, or the module body."""

    node: ast.AST
    name: str
    parent: Scope | None
    kind: Literal["module", "function", "lambda"]
    cls: str | None = None  # the class of a method
    is_async: bool = False
    assigns: dict[str, list[ast.expr]] = field(default_factory=dict)
    params: dict[str, ast.arg] = field(default_factory=dict)
    defaults: dict[str, ast.expr] = field(default_factory=dict)
    defs: dict[str, Scope] = field(default_factory=dict)
    sites: list[Site] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)  # every loop in the scope's own code
    trys: list[ast.Try] = field(default_factory=list)
    step: StepCall | None = None  # a lambda passed to a durable step
    decorators: list[ast.expr] = field(default_factory=list)

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 1)


@dataclass(frozen=True, eq=False)
class Where:
    """Where a node sits inside its scope."""

    scope: Scope
    loops: tuple[Loop, ...] = ()
    trys: tuple[tuple[ast.Try, TryPart], ...] = ()
    handlers: tuple[ast.ExceptHandler, ...] = ()
    withs: tuple[ast.With | ast.AsyncWith, ...] = ()


@dataclass(frozen=True, eq=False)
class StepCall:
    """``ctx.step.run(...)`` and friends (any ``X.step.<method>`` or ``step.<method>``)."""

    call: ast.Call
    method: str
    options: ast.Call | None  # ctx.step.options(...)


@dataclass(frozen=True, eq=False)
class Site:
    call: ast.Call
    where: Where


@dataclass(frozen=True, eq=False)
class Ref:
    """A reference to a function: a call, or the function passed as a value."""

    target: tuple[str, str]  # ("local", qualname) | ("import", "module.name") | ("container", var)
    node: ast.expr
    where: Where
    step: StepCall | None = None  # passed as a durable step's callable
    retry_wrapper: ast.Call | None = None  # passed to Retrying(...)(f) / retry(...)(f)
    called: bool = False


def step_call(call: ast.Call) -> StepCall | None:
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in STEP_METHODS:
        return None
    value = func.value
    options = None
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "options"
    ):
        options = value
        value = value.func.value
    if (isinstance(value, ast.Attribute) and value.attr == "step") or (
        isinstance(value, ast.Name) and value.id == "step"
    ):
        return StepCall(call, func.attr, options)
    return None


def step_callables(step: StepCall) -> list[ast.expr]:
    """The callables a step executes (``run``'s second argument, ``parallel``'s list)."""
    args = step.call.args
    found: list[ast.expr] = []
    if step.method == "run" and len(args) > 1:
        found.append(args[1])
    elif step.method == "parallel" and len(args) > 1 and isinstance(args[1], ast.List | ast.Tuple):
        found.extend(args[1].elts)
    return [unwrap_partial(e) for e in found]


def unwrap_partial(expr: ast.expr) -> ast.expr:
    if (
        isinstance(expr, ast.Call)
        and expr.args
        and (
            (isinstance(expr.func, ast.Name) and expr.func.id == "partial")
            or (isinstance(expr.func, ast.Attribute) and expr.func.attr == "partial")
        )
    ):
        return expr.args[0]
    return expr


class ModuleIndex:
    """Build with ``ModuleIndex(tree, name, path)``; read the attributes."""

    def __init__(self, tree: ast.Module, name: str, path: str, source: str) -> None:
        self.tree = tree
        self.name = name  # dotted module name relative to the scan root
        self.path = path
        self.lines = source.splitlines()
        self.imports: dict[str, str] = {}  # local alias -> qualified name
        self.module = Scope(tree, "<module>", None, "module")
        self.scopes: list[Scope] = [self.module]
        self.functions: dict[str, Scope] = {}  # qualname ("f", "C.m") -> scope
        self.class_attrs: dict[str, dict[str, list[ast.expr]]] = {}  # class -> self.x values
        self.class_methods: dict[str, dict[str, Scope]] = {}
        self.containers: dict[str, list[str]] = {}  # module var -> function names it holds
        self.refs: list[Ref] = []
        self.attr_assigns: dict[str, list[ast.expr]] = {}  # "litellm.num_retries" -> values
        self.step_args: dict[int, StepCall] = {}
        self.retry_args: dict[int, ast.Call] = {}
        _Builder(self).run()

    def qualname(self, expr: ast.expr) -> str | None:
        """The dotted name an expression spells, imports resolved (``oa.OpenAI`` ->
        ``openai.OpenAI``); None for anything but names and attributes."""
        if isinstance(expr, ast.Name):
            return self.imports.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.qualname(expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    def imports_module(self, prefix: str) -> bool:
        return any(q == prefix or q.startswith(prefix + ".") for q in self.imports.values())

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""


class _Builder(ast.NodeVisitor):
    def __init__(self, index: ModuleIndex) -> None:
        self.ix = index
        self.where = Where(index.module)
        self.cls: str | None = None
        self.container: str | None = None
        self.def_names: set[str] = set()
        self.source = "\n".join(index.lines)
        self.called: set[int] = set()

    def run(self) -> None:
        self._prepass()
        for stmt in self.ix.tree.body:
            self.visit(stmt)
        resolved = []
        for ref in self.ix.refs:
            if ref.target[0] == "method":
                if ref.target[1] not in self.ix.functions:
                    continue
                ref = Ref(
                    ("local", ref.target[1]),
                    ref.node,
                    ref.where,
                    ref.step,
                    ref.retry_wrapper,
                    ref.called,
                )
            elif ref.target[0] == "name":
                scope = _lookup(ref.where.scope, ref.target[1])
                if scope is None:
                    continue
                ref = Ref(
                    ("local", scope.name),
                    ref.node,
                    ref.where,
                    ref.step,
                    ref.retry_wrapper,
                    ref.called,
                )
            resolved.append(ref)
        self.ix.refs = resolved

    # -- pre-pass: the names a reference can point to -------------------------------------

    def _prepass(self) -> None:
        # A superset (names in strings and comments too) is enough: it only filters which
        # names are recorded as references; they are resolved once every scope is known.
        self.def_names.update(_DEF.findall(self.source))
        for stmt in self.ix.tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Name) and isinstance(
                    stmt.value, ast.Dict | ast.List | ast.Tuple
                ):
                    values = (
                        stmt.value.values if isinstance(stmt.value, ast.Dict) else stmt.value.elts
                    )
                    names = [
                        v.id for v in values if isinstance(v, ast.Name) and v.id in self.def_names
                    ]
                    if names:
                        self.ix.containers[target.id] = names

    # -- scopes ------------------------------------------------------------------------

    def _function(self, node: AnyFunction) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        self._visit_args(node.args)
        if node.returns:
            self.visit(node.returns)
        parent = self.where.scope
        qual = node.name if parent.kind == "module" else f"{parent.name}.{node.name}"
        if self.cls and parent.kind == "module":
            qual = f"{self.cls}.{node.name}"
        scope = Scope(
            node,
            qual,
            parent,
            "function",
            cls=self.cls if parent.kind == "module" else None,
            is_async=isinstance(node, ast.AsyncFunctionDef),
            decorators=list(node.decorator_list),
        )
        self._params(scope, node.args)
        if self.cls and parent.kind == "module":
            self.ix.class_methods.setdefault(self.cls, {})[node.name] = scope
        else:
            parent.defs[node.name] = scope
        self.ix.functions[qual] = scope
        self.ix.scopes.append(scope)
        saved, saved_cls = self.where, self.cls
        self.where, self.cls = Where(scope), None
        for stmt in node.body:
            self.visit(stmt)
        self.where, self.cls = saved, saved_cls

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _params(self, scope: Scope, args: ast.arguments) -> None:
        positional = [*args.posonlyargs, *args.args]
        for arg in [*positional, *args.kwonlyargs]:
            scope.params[arg.arg] = arg
        for arg, default in zip(
            positional[len(positional) - len(args.defaults) :], args.defaults, strict=True
        ):
            scope.defaults[arg.arg] = default
        for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if kw_default is not None:
                scope.defaults[arg.arg] = kw_default

    def _visit_args(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.annotation:
                self.visit(arg.annotation)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_args(node.args)
        parent = self.where.scope
        scope = Scope(node, f"{parent.name}.<lambda>", parent, "lambda", is_async=False)
        scope.step = self.ix.step_args.get(id(node))
        self._params(scope, node.args)
        self.ix.scopes.append(scope)
        saved = self.where
        self.where = Where(scope)
        self.visit(node.body)
        self.where = saved

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        for base in node.bases:
            self.visit(base)
        if self.where.scope.kind != "module" or self.cls:
            for stmt in node.body:
                self.visit(stmt)
            return
        self.cls = node.name
        attrs = self.ix.class_attrs.setdefault(node.name, {})
        for stmt in node.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        attrs.setdefault(t.id, []).append(stmt.value)
                self.visit(stmt.value)
            else:
                self.visit(stmt)
        self.cls = None

    # -- control flow ------------------------------------------------------------------

    def _loop(self, node: Loop) -> None:
        self.where.scope.loops.append(node)
        if isinstance(node, ast.While):
            self.visit(node.test)
        else:
            self.visit(node.iter)
            self.visit(node.target)
        saved = self.where
        self.where = _extend(saved, loops=(*saved.loops, node))
        for stmt in node.body:
            self.visit(stmt)
        self.where = saved
        for stmt in node.orelse:
            self.visit(stmt)

    visit_For = _loop
    visit_AsyncFor = _loop
    visit_While = _loop

    def visit_Try(self, node: ast.Try) -> None:
        self.where.scope.trys.append(node)
        saved = self.where
        self.where = _extend(saved, trys=(*saved.trys, (node, "body")))
        for stmt in node.body:
            self.visit(stmt)
        for handler in node.handlers:
            self.where = _extend(
                saved, trys=(*saved.trys, (node, "handler")), handlers=(*saved.handlers, handler)
            )
            if handler.type:
                self.visit(handler.type)
            for stmt in handler.body:
                self.visit(stmt)
        for part, stmts in (("else", node.orelse), ("finally", node.finalbody)):
            self.where = _extend(saved, trys=(*saved.trys, (node, part)))
            for stmt in stmts:
                self.visit(stmt)
        self.where = saved

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def _with(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if isinstance(item.optional_vars, ast.Name):
                self._assign(item.optional_vars.id, item.context_expr)
        saved = self.where
        self.where = _extend(saved, withs=(*saved.withs, node))
        for stmt in node.body:
            self.visit(stmt)
        self.where = saved

    visit_With = _with
    visit_AsyncWith = _with

    # -- bindings ----------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.ix.imports[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.ix.imports[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            package = self.ix.name.split(".")
            package = package[: len(package) - node.level] if len(package) >= node.level else []
            module = ".".join([*package, module] if module else package)
        for alias in node.names:
            if alias.name != "*":
                self.ix.imports[alias.asname or alias.name] = f"{module}.{alias.name}"

    def _assign(self, name: str, value: ast.expr) -> None:
        self.where.scope.assigns.setdefault(name, []).append(value)

    def _target(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self._assign(target.id, value)
        elif isinstance(target, ast.Attribute):
            if isinstance(target.value, ast.Name) and target.value.id in ("self", "cls"):
                cls = self._method_class()
                if cls:
                    self.ix.class_attrs.setdefault(cls, {}).setdefault(target.attr, []).append(
                        value
                    )
            qual = self.ix.qualname(target)
            if qual:
                self.ix.attr_assigns.setdefault(qual, []).append(value)

    def _method_class(self) -> str | None:
        scope: Scope | None = self.where.scope
        while scope is not None:
            if scope.cls:
                return scope.cls
            scope = scope.parent
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        container = None
        if (
            self.where.scope.kind == "module"
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in self.ix.containers
        ):
            container = node.targets[0].id
        saved, self.container = self.container, container
        self.visit(node.value)
        self.container = saved
        for target in node.targets:
            self._target(target, node.value)
            if not isinstance(target, ast.Name):
                self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._target(node.target, node.value)
        elif isinstance(node.target, ast.Name) and self.where.scope.kind != "module":
            pass
        self.visit(node.annotation)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._assign(node.target.id, node.value)

    # -- calls and references ----------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        self.where.scope.sites.append(Site(node, self.where))
        self.called.add(id(node.func))
        step = step_call(node)
        if step is not None:
            for expr in step_callables(step):
                self.ix.step_args[id(expr)] = step
                if isinstance(expr, ast.Subscript):  # TOOLS[name]: the registry is the callable
                    self.ix.step_args[id(expr.value)] = step
        if isinstance(node.func, ast.Call) and node.args:
            # Retrying(...)(fn, ...), retry(...)(fn), backoff.on_exception(...)(fn)
            self.ix.retry_args[id(unwrap_partial(node.args[0]))] = node.func
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        name = node.id
        if self.container is not None and name in self.def_names:
            return  # counted through the container's uses
        if name in self.def_names:
            self._ref(("name", name), node)
        elif name in self.ix.containers and not _shadowed(self.where.scope, name):
            self._ref(("container", name), node)
        elif name in self.ix.imports and not _shadowed(self.where.scope, name):
            self._ref(("import", self.ix.imports[name]), node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Name) and isinstance(node.ctx, ast.Load):
            if value.id in ("self", "cls"):
                cls = self._method_class()
                if cls and node.attr in self.def_names:
                    self._ref(("method", f"{cls}.{node.attr}"), node)
                    return
            elif value.id in self.ix.imports and not _shadowed(self.where.scope, value.id):
                self._ref(("import", f"{self.ix.imports[value.id]}.{node.attr}"), node)
        self.generic_visit(node)

    def _ref(self, target: tuple[str, str], node: ast.expr) -> None:
        self.ix.refs.append(
            Ref(
                target,
                node,
                self.where,
                step=self.ix.step_args.get(id(node)),
                retry_wrapper=self.ix.retry_args.get(id(node)),
                called=id(node) in self.called,
            )
        )


def _lookup(scope: Scope | None, name: str) -> Scope | None:
    """The function definition a name refers to from a scope (None: not a function)."""
    while scope is not None:
        if name in scope.defs:
            return scope.defs[name]
        if name in scope.assigns or name in scope.params:
            return None
        scope = scope.parent
    return None


def _shadowed(scope: Scope | None, name: str) -> bool:
    while scope is not None and scope.kind != "module":
        if name in scope.assigns or name in scope.params:
            return True
        scope = scope.parent
    return False


def _extend(where: Where, **changes: object) -> Where:
    return Where(
        where.scope,
        loops=changes.get("loops", where.loops),  # type: ignore[arg-type]
        trys=changes.get("trys", where.trys),  # type: ignore[arg-type]
        handlers=changes.get("handlers", where.handlers),  # type: ignore[arg-type]
        withs=changes.get("withs", where.withs),  # type: ignore[arg-type]
    )

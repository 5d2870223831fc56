"""What an expression is: a model client (and how it was configured), a model call, an HTTP
call, a tool dispatch. Follows simple assignments, imports, ``self.x``, factory functions,
``with_options`` and LangChain's ``|`` chains; gives up (returns None) on anything else."""

from __future__ import annotations

import ast
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from tether.audit.module import ModuleIndex, Scope
from tether.audit.shapes import (
    CONSTRUCTORS,
    DERIVING,
    HTTP_FUNCTIONS,
    HTTP_METHODS,
    MODEL_FUNCTIONS,
    MODEL_METHODS,
    MODEL_URL_HINTS,
    SHAPE_ONLY,
    TETHER_CALLS,
    ClientKind,
)

# Finds a module-level binding in another scanned module: (qualified name) -> (module, value).
Foreign = Callable[[str], "tuple[ModuleIndex, ast.expr] | None"]
MAX_DEPTH = 8


@dataclass(frozen=True)
class Client:
    kind: ClientKind
    kwargs: dict[str, ast.expr] = field(default_factory=dict)
    known: bool = True  # False: built elsewhere (a parameter), configuration unknown
    opaque: bool = False  # built with **kwargs: configuration unknown
    line: int = 0
    app_retry: int = 0  # a LangChain .with_retry(...) line
    chat: bool = False  # a google-genai chat session
    path: str = ""  # the file the client was built in, when not this one


@dataclass(frozen=True)
class ModelCall:
    kind: str
    client: Client | None  # None: a tether call (own policy)
    call: ast.Call
    tether: bool = False
    http: bool = False  # a model API reached with requests/httpx


@dataclass(frozen=True)
class HttpCall:
    kind: ClientKind
    client: Client | None
    call: ast.Call


class Resolver:
    def __init__(self, ix: ModuleIndex, foreign: Foreign) -> None:
        self.ix = ix
        self.foreign = foreign
        self._returns: dict[int, list[ast.expr]] = {}

    # -- clients -----------------------------------------------------------------------

    def client(self, expr: ast.expr, scope: Scope, depth: int = 0) -> Client | None:
        if depth > MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, ast.Await):
            return self.client(expr.value, scope, d)
        if isinstance(expr, ast.IfExp):
            return self.client(expr.body, scope, d) or self.client(expr.orelse, scope, d)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            for side in (expr.right, expr.left):
                found = self.client(side, scope, d)
                if found and found.kind.name == "langchain":
                    return found
            return None
        if isinstance(expr, ast.Call):
            return self._call_client(expr, scope, d)
        if isinstance(expr, ast.Name):
            return self._name_client(expr.id, scope, d)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            if expr.value.id in ("self", "cls"):
                cls = _class_of(scope)
                for value in reversed(self.ix.class_attrs.get(cls or "", {}).get(expr.attr, [])):
                    found = self.client(value, self._method_scope(cls, value) or scope, d)
                    if found:
                        return found
                return None
            qual = self.ix.qualname(expr)
            if qual:
                return self._foreign_client(qual, d)
        return None

    def _call_client(self, call: ast.Call, scope: Scope, d: int) -> Client | None:
        qual = self.ix.qualname(call.func)
        if qual in CONSTRUCTORS:
            kwargs = {k.arg: k.value for k in call.keywords if k.arg}
            opaque = any(k.arg is None for k in call.keywords)
            return Client(CONSTRUCTORS[qual], kwargs, opaque=opaque, line=call.lineno)
        func = call.func
        if isinstance(func, ast.Attribute):
            if func.attr in DERIVING:
                base = self.client(func.value, scope, d)
                if base is None:
                    return None
                if func.attr == "with_options":
                    merged = {**base.kwargs, **{k.arg: k.value for k in call.keywords if k.arg}}
                    return Client(
                        base.kind,
                        merged,
                        base.known,
                        base.opaque,
                        base.line,
                        base.app_retry,
                        base.chat,
                        base.path,
                    )
                if func.attr == "with_retry":
                    return Client(
                        base.kind,
                        base.kwargs,
                        base.known,
                        base.opaque,
                        base.line,
                        call.lineno,
                        base.chat,
                        base.path,
                    )
                return base
            if (
                func.attr == "create"
                and isinstance(func.value, ast.Attribute)
                and func.value.attr == "chats"
            ):
                base = self.client(func.value.value, scope, d)
                if base and base.kind.name == "gemini":
                    return Client(
                        base.kind,
                        base.kwargs,
                        base.known,
                        base.opaque,
                        base.line,
                        chat=True,
                        path=base.path,
                    )
            return None
        if isinstance(func, ast.Name):
            if func.id == "Depends" and call.args:
                return self.client(ast.Call(call.args[0], [], []), scope, d)
            target = self._function(func.id, scope)
            if target is not None:
                for value in self.returns(target):
                    found = self.client(value, target, d)
                    if found:
                        return found
            elif func.id in self.ix.imports:
                return self._foreign_client(self.ix.imports[func.id], d, call=True)
        return None

    def _name_client(self, name: str, scope: Scope, d: int) -> Client | None:
        current: Scope | None = scope
        while current is not None:
            for value in reversed(current.assigns.get(name, [])):
                found = self.client(value, current, d)
                if found:
                    return found
            if name in current.assigns:
                return None
            if name in current.params:
                arg = current.params[name]
                if name in current.defaults:
                    found = self.client(current.defaults[name], current, d)
                    if found:
                        return found
                if arg.annotation is not None:
                    qual = self.ix.qualname(_unquote(arg.annotation))
                    if qual in CONSTRUCTORS:
                        return Client(CONSTRUCTORS[qual], known=False)
                return None
            current = current.parent
        if name in self.ix.imports:
            return self._foreign_client(self.ix.imports[name], d)
        return None

    def _foreign_client(self, qual: str, d: int, call: bool = False) -> Client | None:
        found = self.foreign(qual)
        if found is None:
            return None
        module, value = found
        other = Resolver(module, self.foreign)
        if call:
            scope = module.functions.get(qual.rsplit(".", 1)[-1])
            if scope is None:
                return None
            for ret in other.returns(scope):
                client = other.client(ret, scope, d)
                if client:
                    return Client(
                        client.kind,
                        client.kwargs,
                        client.known,
                        client.opaque,
                        client.line,
                        client.app_retry,
                        client.chat,
                        module.path,
                    )
            return None
        client = other.client(value, module.module, d)
        if client is None:
            return None
        return Client(
            client.kind,
            client.kwargs,
            client.known,
            client.opaque,
            client.line,
            client.app_retry,
            client.chat,
            module.path,
        )

    def _method_scope(self, cls: str | None, value: ast.expr) -> Scope | None:
        for method in self.ix.class_methods.get(cls or "", {}).values():
            node = method.node
            if getattr(node, "lineno", 0) <= value.lineno <= getattr(node, "end_lineno", 0):
                return method
        return None

    def _function(self, name: str, scope: Scope) -> Scope | None:
        current: Scope | None = scope
        while current is not None:
            if name in current.defs:
                return current.defs[name]
            current = current.parent
        return None

    def returns(self, scope: Scope) -> list[ast.expr]:
        key = id(scope.node)
        if key not in self._returns:
            self._returns[key] = [
                node.value
                for node in _own_nodes(scope.node)
                if isinstance(node, ast.Return) and node.value
            ]
        return self._returns[key]

    # -- calls -------------------------------------------------------------------------

    def model_call(self, call: ast.Call, scope: Scope) -> ModelCall | None:
        func = call.func
        qual = self.ix.qualname(func)
        if qual in TETHER_CALLS:
            return ModelCall("tether", None, call, tether=True)
        if qual in MODEL_FUNCTIONS:
            kind = MODEL_FUNCTIONS[qual]
            return ModelCall(kind.name, Client(kind, {}, line=0), call)
        if not isinstance(func, ast.Attribute):
            return None
        path: list[str] = []
        node: ast.expr = func
        while isinstance(node, ast.Attribute):
            path.insert(0, node.attr)
            node = node.value
            client = self.client(node, scope)
            if client is not None:
                family = "gemini-chat" if client.chat else client.kind.name
                if tuple(path) in MODEL_METHODS.get(family, frozenset()):
                    return ModelCall(client.kind.name, client, call)
                return None
        sdk = SHAPE_ONLY.get(tuple(path))
        if sdk and self.ix.imports_module(sdk):
            return ModelCall("gemini" if sdk == "google.genai" else sdk, None, call)
        return None

    def http_call(self, call: ast.Call, scope: Scope) -> HttpCall | None:
        func = call.func
        qual = self.ix.qualname(func)
        if qual in HTTP_FUNCTIONS:
            return HttpCall(HTTP_FUNCTIONS[qual], None, call)
        if isinstance(func, ast.Attribute) and func.attr in HTTP_METHODS:
            client = self.client(func.value, scope)
            if client is not None and not client.kind.model:
                return HttpCall(client.kind, client, call)
        return None

    def is_model_url(self, http: HttpCall, scope: Scope) -> bool:
        exprs: list[ast.expr] = list(http.call.args[:1])
        exprs += [k.value for k in http.call.keywords if k.arg == "url"]
        if http.client is not None and "base_url" in http.client.kwargs:
            exprs.append(http.client.kwargs["base_url"])
        text = " ".join(self.text(e, scope) for e in exprs).lower()
        return any(hint in text for hint in MODEL_URL_HINTS)

    def text(self, expr: ast.expr, scope: Scope, depth: int = 0) -> str:
        """The constant text an expression is built from (f-string parts, + and names)."""
        if depth > 4:
            return ""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        if isinstance(expr, ast.JoinedStr):
            return "".join(self.text(v, scope, depth + 1) for v in expr.values)
        if isinstance(expr, ast.FormattedValue):
            return self.text(expr.value, scope, depth + 1)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return self.text(expr.left, scope, depth + 1) + self.text(expr.right, scope, depth + 1)
        if isinstance(expr, ast.Name):
            current: Scope | None = scope
            while current is not None:
                if expr.id in current.assigns:
                    return " ".join(
                        self.text(v, current, depth + 1) for v in current.assigns[expr.id]
                    )
                current = current.parent
        return ""

    def is_dispatch(self, call: ast.Call, scope: Scope) -> bool:
        """``TOOLS[name](**args)``, ``fn = tools[name]; fn(...)``, ``getattr(obj, name)(...)``."""
        func = call.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("invoke", "ainvoke", "run", "arun")
            and isinstance(func.value, ast.Name)
        ):  # a LangChain @tool function
            target = self._function(func.value.id, scope)
            if target is not None and any(
                (self.ix.qualname(d.func if isinstance(d, ast.Call) else d) or "").endswith(".tool")
                for d in target.decorators
            ):
                return True
        if isinstance(func, ast.Subscript):
            return not isinstance(func.slice, ast.Constant | ast.Slice)
        if (
            isinstance(func, ast.Call)
            and isinstance(func.func, ast.Name)
            and func.func.id == "getattr"
        ):
            return len(func.args) >= 2 and not isinstance(func.args[1], ast.Constant)
        if isinstance(func, ast.Name):
            values = scope.assigns.get(func.id, [])
            return bool(values) and all(
                (isinstance(v, ast.Subscript) and not isinstance(v.slice, ast.Constant))
                or (
                    isinstance(v, ast.Call)
                    and isinstance(v.func, ast.Attribute)
                    and v.func.attr == "get"
                    and _name_hint(v.func.value, ("tool", "function", "handler"))
                )
                for v in values
            )
        return False


def _name_hint(expr: ast.expr, hints: tuple[str, ...]) -> bool:
    name = (
        expr.id
        if isinstance(expr, ast.Name)
        else expr.attr
        if isinstance(expr, ast.Attribute)
        else ""
    )
    return any(h in name.lower() for h in hints)


def _unquote(expr: ast.expr) -> ast.expr:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        try:
            return ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            return expr
    return expr


def _class_of(scope: Scope | None) -> str | None:
    while scope is not None:
        if scope.cls:
            return scope.cls
        scope = scope.parent
    return None


# Node lists are computed once per scan: ``scan.code`` sets a cache for its duration.
CACHE: ContextVar[dict[int, list[ast.AST]] | None] = ContextVar("tether_audit_cache", default=None)
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def cached(key: object, compute: Callable[[], list[ast.AST]]) -> list[ast.AST]:
    cache = CACHE.get()
    if cache is None:
        return compute()
    found = cache.get(id(key))
    if found is None:
        found = cache[id(key)] = compute()
    return found


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """The nodes of a function body, without descending into nested functions and classes."""

    def compute() -> list[ast.AST]:
        found: list[ast.AST] = []
        stack = list(ast.iter_child_nodes(node))
        while stack:
            child = stack.pop()
            found.append(child)
            if not isinstance(child, _NESTED):
                stack.extend(ast.iter_child_nodes(child))
        return found

    return cached(node, compute)


own_nodes = _own_nodes
class_of = _class_of

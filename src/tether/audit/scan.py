"""``tether.audit.code(path)``: walk a tree of Python files, index each, run the rules."""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
import warnings
from pathlib import Path

from tether.audit.analysis import Project
from tether.audit.checks import call_checks
from tether.audit.checks_context import context_checks
from tether.audit.checks_errors import error_checks
from tether.audit.model import CodeAudit, Finding, Skipped
from tether.audit.module import ModuleIndex
from tether.audit.resolve import CACHE
from tether.errors import ConfigurationError
from tether.flow.expr import depth

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "site-packages",
        ".eggs",
    }
)
MAX_DEPTH = 200  # the checks walk trees recursively; deeper files are reported as skipped
_IGNORE = re.compile(r"#\s*tether:\s*ignore(?:\[([A-Za-z0-9_,\s]+)\])?")


def code(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> CodeAudit:
    """Audit the Python code under ``path`` (a directory or one file).

    Paths in findings are relative to ``root``: by default the current directory when
    ``path`` is inside it, else ``path`` itself (its folder for a file). A path that does not
    exist raises ``ConfigurationError``; a file that cannot be read or parsed is reported in
    ``CodeAudit.skipped`` and the rest is audited.
    """
    target = Path(path)
    if not target.exists():
        raise ConfigurationError(
            f"tether audit code: {str(path)!r} does not exist; pass a Python file or a directory of them"
        )
    target = target.resolve()
    base = _root(target, root)
    files = [target] if target.is_file() else sorted(_python_files(target))
    modules: list[ModuleIndex] = []
    skipped: list[Skipped] = []
    sources: dict[str, str] = {}
    for file in files:
        rel = _relative(file, base)
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            skipped.append(Skipped(rel, 0, f"cannot read: {exc}"))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning for invalid escapes in user code
                tree = ast.parse(source, filename=rel)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", 0) or 0
            msg = getattr(exc, "msg", None) or str(exc)
            skipped.append(Skipped(rel, line, f"not parsed, skipped: {msg}"))
            continue
        except (RecursionError, MemoryError):
            skipped.append(Skipped(rel, 0, "not parsed, skipped: nested too deeply"))
            continue
        if depth(tree) > MAX_DEPTH:
            skipped.append(Skipped(rel, 0, f"skipped: nested deeper than {MAX_DEPTH} levels"))
            continue
        modules.append(ModuleIndex(tree, _module_name(file, base), rel, source))
        sources[rel] = source
    token = CACHE.set({})
    try:
        project = Project(modules)
        found = [*call_checks(project), *error_checks(project), *context_checks(project)]
    finally:
        CACHE.reset(token)
    kept, suppressed = _suppress(_unique(found), sources)
    kept.sort(key=lambda f: (f.path, f.line, f.col, f.rule))
    model_calls = sum(1 for f in project.facts if f.is_model)
    tool_calls = sum(1 for f in project.facts if f.is_tool)
    return CodeAudit(
        root=str(base),
        findings=kept,
        skipped=skipped,
        files=len(files),
        model_calls=model_calls,
        tool_calls=tool_calls,
        suppressed=suppressed,
    )


def _root(target: Path, root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root).resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or cwd in target.parents:
        return cwd
    return target if target.is_dir() else target.parent


def _python_files(top: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        found.extend(Path(dirpath) / name for name in filenames if name.endswith(".py"))
    return found


def _relative(file: Path, base: Path) -> str:
    try:
        return file.relative_to(base).as_posix()
    except ValueError:
        return file.as_posix()


def _module_name(file: Path, base: Path) -> str:
    parts = list(Path(_relative(file, base)).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(p for p in parts if p not in ("", "/")) or file.stem


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, int, int]] = set()
    out = []
    for f in findings:
        key = (f.rule, f.path, f.line, f.col)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def ignores(source: str) -> dict[int, frozenset[str] | None]:
    """Line -> rules silenced there (None: all rules), from ``# tether: ignore[...]`` comments."""
    if "tether:" not in source:
        return {}
    found: dict[int, frozenset[str] | None] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return {}
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        match = _IGNORE.search(tok.string)
        if match:
            rules = match.group(1)
            found[tok.start[0]] = (
                frozenset(r.strip().upper() for r in rules.split(",") if r.strip())
                if rules
                else None
            )
    return found


def _suppress(findings: list[Finding], sources: dict[str, str]) -> tuple[list[Finding], int]:
    cache: dict[str, dict[int, frozenset[str] | None]] = {}
    kept, dropped = [], 0
    for f in findings:
        if f.path not in cache:
            cache[f.path] = ignores(sources.get(f.path, ""))
        marks = cache[f.path]
        if f.line in marks and (marks[f.line] is None or f.rule in marks[f.line]):  # type: ignore[operator]
            dropped += 1
            continue
        kept.append(f)
    return kept, dropped

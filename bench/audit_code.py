"""Time `tether.audit.code` on a generated tree of 1,000 Python files.

The tree mixes the labelled corpus (tests/audit/corpus, AI scripts with faults) with plain
modules of about 200 lines (classes, loops, try blocks, requests calls), in packages that
import each other, so the call graph and the cross-module lookups have work to do.

    PYTHONPATH=src python bench/audit_code.py [--files 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import ast
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import tether.audit

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "audit" / "corpus"

PLAIN = '''"""Generated module {n}."""
import json
import logging
import requests
from pkg{p}.mod{q} import helper_{q}

log = logging.getLogger(__name__)


def helper_{n}(x: int) -> int:
    return x * {n}


class Service{n}:
    def __init__(self, base: str) -> None:
        self.base = base
        self.cache: dict[str, str] = {{}}

{methods}
'''

METHOD = """    def fetch_{i}(self, key: str) -> str:
        if key in self.cache:
            return self.cache[key]
        for attempt in range(3):
            try:
                r = requests.get(self.base + "/{i}/" + key, timeout=5)
                r.raise_for_status()
                self.cache[key] = r.text
                return r.text
            except requests.ConnectionError:
                log.warning("retry %d", attempt)
        data = json.dumps({{"key": key, "n": helper_{q}({i})}})
        return data
"""


def build(root: Path, files: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    corpus = sorted(CORPUS.rglob("*.py"))
    lines = 0
    for n in range(files):
        package = root / f"pkg{n // 50}"
        package.mkdir(exist_ok=True)
        (package / "__init__.py").touch()
        if n % 5 == 0:
            text = corpus[n // 5 % len(corpus)].read_text()
        else:
            q = rng.randrange(max(n, 1))
            methods = "\n".join(METHOD.format(i=i, q=q) for i in range(12))
            text = PLAIN.format(n=n, p=q // 50, q=q, methods=methods)
        (package / f"mod{n}.py").write_text(text)
        lines += text.count("\n")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tether-audit-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    lines = build(root, args.files)
    files = sorted(root.rglob("*.py"))
    parse = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for file in files:
            ast.parse(file.read_text(), filename=str(file))
        parse.append(time.perf_counter() - started)
    timings = []
    audit = None
    for _ in range(args.rounds):
        started = time.perf_counter()
        audit = tether.audit.code(root, root=root)
        timings.append(time.perf_counter() - started)
    assert audit is not None
    best, median = min(timings), statistics.median(timings)
    print(
        f"{audit.files} files, {lines:,} lines (+{len(list(root.glob('pkg*/__init__.py')))} __init__)"
    )
    print(
        f"{audit.model_calls} model calls, {audit.tool_calls} tool calls, {len(audit.findings)} findings"
    )
    print(
        f"scan: best {best:.2f} s, median {median:.2f} s of {args.rounds} "
        f"({audit.files / median:,.0f} files/s)"
    )
    base = statistics.median(parse)
    print(
        f"bare ast.parse of the same files: median {base:.2f} s; the scan costs {median / base:.1f}x that"
    )
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()

"""SQL is built only with parameters, on both backends.

Every statement text that reaches the database driver (sqlite3's connections and cursors,
psycopg's cursors) is recorded while a workload passes user data everywhere it can go:
function ids, step ids, event names, ids and data, run ids, flow-control keys, ``match``
values, search text, key-value keys, subjects. Each such value carries a marker with
quotes in it. A statement that spliced a value into its text (an f-string, ``%``,
``+``) would carry the marker, or break on its quotes: the test fails on either. A
self-check proves the recorder sees such a statement. A static scan of tether's source
adds what no workload reaches: no function splices a ``str`` argument into an SQL
f-string unless it is a named SQL fragment.
"""

from __future__ import annotations

import ast
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.context.conformance import user
from tether.context.stored import StoreWindowLog
from tether.store import open_store
from tether.store.queries import RunQuery

MARK = "Qz7mark"
EVIL = f"{MARK}'\"); --"  # what a spliced value would bring into a statement


class Recorder:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def add(self, sql: Any) -> None:
        self.statements.append(sql if isinstance(sql, str) else repr(sql))

    def spliced(self) -> list[str]:
        return [s for s in self.statements if MARK in s]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, backend: str) -> Iterator[Recorder]:
    rec = Recorder()

    class Cursor(sqlite3.Cursor):
        def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            rec.add(sql)
            return super().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            rec.add(sql)
            return super().executemany(sql, *args)

    class Connection(sqlite3.Connection):
        def cursor(self, factory: Any = Cursor) -> Any:  # type: ignore[override]
            return super().cursor(factory)

        def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            return self.cursor().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            return self.cursor().executemany(sql, *args)

        def executescript(self, script: str) -> Any:  # type: ignore[override]
            rec.add(script)
            return super().executescript(script)

    real_connect = sqlite3.connect

    def connect(*args: Any, **kw: Any) -> Any:
        kw.setdefault("factory", Connection)
        return real_connect(*args, **kw)

    monkeypatch.setattr(sqlite3, "connect", connect)
    if backend == "postgres":
        import psycopg

        for cls in (psycopg.Cursor, psycopg.ServerCursor):
            for name in ("execute", "executemany"):
                original = getattr(cls, name)

                def wrapped(self: Any, query: Any, *a: Any, _o: Any = original, **k: Any) -> Any:
                    rec.add(query if isinstance(query, str) else str(query))
                    return _o(self, query, *a, **k)

                monkeypatch.setattr(cls, name, wrapped)
    yield rec


def _wait(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _workload(th: tether.Harness) -> None:
    fid = f"fn-{EVIL}"

    @th.function(
        id=fid,
        trigger=tether.on_event(f"ev-{EVIL}"),
        concurrency=tether.Concurrency(limit=2, key="event.data.k"),
        retries=tether.Retry(max_attempts=2, initial=0.01, jitter=False),
    )
    async def flow(ctx: tether.Context) -> dict[str, Any]:
        out = await ctx.step.run(f"step-{EVIL}", lambda: {"v": EVIL})
        ev = await ctx.step.wait_for_event(
            f"wait-{EVIL}", event=f"go-{EVIL}", match="data.k", timeout=30
        )
        await ctx.step.send_event(f"send-{EVIL}", tether.Event(f"out-{EVIL}", {"k": EVIL}))
        return {"out": out, "ev": ev.data if ev else None}

    @th.function(
        id=f"debounced-{EVIL}",
        trigger=tether.on_event(f"edit-{EVIL}"),
        debounce=tether.Debounce(period=0.2, key="event.data.k"),
    )
    def debounced(ctx: tether.SyncContext) -> str:
        return str(ctx.event.data["k"])

    with th.worker(concurrency=4):
        th.send(tether.Event(f"ev-{EVIL}", {"k": EVIL, "x": EVIL}, id=f"id-{EVIL}"))
        th.send(tether.Event(f"ev-{EVIL}", {"k": EVIL}, id=f"id-{EVIL}"))  # a duplicate
        handle = th.enqueue(fid, {"k": EVIL}, run_id=f"run-{EVIL}")
        _wait(lambda: th.get_run(handle.run_id).status == "waiting")
        th.send(tether.Event(f"go-{EVIL}", {"k": EVIL}))
        th.send(tether.Event(f"edit-{EVIL}", {"k": EVIL}))
        assert handle.result(timeout=30)["out"] == {"v": EVIL}
        _wait(lambda: [r.status for r in th.list_runs(f"debounced-{EVIL}")] == ["completed"])
    store: Any = th.store
    assert th.get_run(f"run-{EVIL}").input == {"k": EVIL}
    assert store.query_runs(RunQuery(text=f"{MARK}'", function_id=fid, event_id=f"id-{EVIL}"))
    store.query_runs(RunQuery(text=f"%_{EVIL}\\", before=f"run-{EVIL}", status="completed"))
    assert store.list_events(10, f"id-{EVIL}", f"ev-{EVIL}") is not None
    assert store.list_runs(fid, "completed", 10, f"run-{EVIL}") is not None
    with pytest.raises(tether.RunNotFound):
        th.get_run(f"missing-{EVIL}")
    store.kv_set(f"kv-{EVIL}", EVIL)
    assert store.kv_get(f"kv-{EVIL}") == EVIL
    th.cancel(f"run-{EVIL}")
    replayed = th.replay(f"run-{EVIL}", from_step=f"step-{EVIL}")
    assert replayed.run_id
    # Memories, preferences, windows and a subject's erasure, all keyed by user data.
    who = th.subject(f"user:{EVIL}")
    item = who.memory.add(f"{EVIL} likes tea", source=EVIL, tags=[EVIL])
    assert who.memory.search(f"{MARK} tea")
    who.memory.update(item.id, f"{EVIL} likes coffee")
    assert who.memory.list(tags=[EVIL])
    who.preferences["lang"] = EVIL
    log = StoreWindowLog(th.store, f"chat-{EVIL}", subject=f"user:{EVIL}")
    log.append([user(EVIL)])
    assert log.items() and who.windows() == [f"chat-{EVIL}"]
    assert who.export()["subject"] == f"user:{EVIL}"
    assert f"user:{EVIL}" in th.subjects()
    who.forget()
    th.prune("0s")


def test_no_statement_carries_user_data(store_url: str, recorder: Recorder) -> None:
    th = tether.Harness(store_url, embedder=None)
    try:
        _workload(th)
    finally:
        th.close()
    assert len(recorder.statements) > 100, "the recorder saw too little to mean anything"
    spliced = recorder.spliced()
    assert not spliced, f"statements built with user data: {spliced[:3]}"


def test_no_statement_carries_user_data_with_encryption(store_url: str, recorder: Recorder) -> None:
    pytest.importorskip("cryptography")
    from tether.store.encryption import generate_key

    store = open_store(store_url, encryption_key=generate_key())
    try:
        sealed = store.codec.encode(EVIL, f"user:{EVIL}")
        assert store.codec.decode(sealed, f"user:{EVIL}") == EVIL
        assert store.destroy_subject_key(f"user:{EVIL}")  # type: ignore[attr-defined]
    finally:
        store.close()
    assert recorder.statements and not recorder.spliced()


def test_the_recorder_catches_a_statement_built_with_a_value(
    store_url: str, recorder: Recorder
) -> None:
    store: Any = open_store(store_url)
    try:
        run_id = f"run-{MARK}"  # no quotes: the statement runs, and is caught all the same
        store.read(f"SELECT id FROM runs WHERE id='{run_id}'")
    finally:
        store.close()
    assert recorder.spliced() == [f"SELECT id FROM runs WHERE id='{run_id}'"]


# The static half: in tether's source, a function's ``str`` argument spliced into an SQL
# f-string must be a named SQL fragment (a ``where`` clause the caller built with
# parameters, a column from a fixed list), never a value.
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES|SET)\b")
FRAGMENTS = {"where", "guard", "cond", "clause", "column", "columns", "table", "order"}
SRC = Path(tether.__file__).parent


def spliced_arguments(source: str) -> list[str]:
    """``function: expression`` of every ``str`` argument spliced into an SQL f-string."""
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        texts = {
            a.arg
            for a in args
            if a.annotation is not None
            and "str" in ast.unparse(a.annotation)
            and "Callable" not in ast.unparse(a.annotation)
        }
        for node in ast.walk(fn):
            if not isinstance(node, ast.JoinedStr):
                continue
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if not SQL_WORDS.search(str(text)):
                continue
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    used = {n.id for n in ast.walk(part.value) if isinstance(n, ast.Name)}
                    if (used & texts) - FRAGMENTS:
                        found.append(f"{fn.name}: {ast.unparse(part.value)}")
    return found


def test_no_function_splices_a_text_argument_into_sql() -> None:
    offenders = {
        str(path.relative_to(SRC)): hits
        for path in sorted(SRC.rglob("*.py"))
        if (hits := spliced_arguments(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"SQL built with argument values (use ? parameters): {offenders}"


def test_the_static_check_catches_an_interpolated_value() -> None:
    bad = (
        "def cancel(tx, run_id: str) -> None:\n"
        "    tx.execute(f\"UPDATE runs SET status='cancelled' WHERE id='{run_id}'\")\n"
        "def fine(tx, where: str, run_id: str) -> None:\n"
        '    tx.execute(f"SELECT id FROM runs WHERE {where} AND id=?", (run_id,))\n'
    )
    assert spliced_arguments(bad) == ["cancel: run_id"]

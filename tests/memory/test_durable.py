"""``ctx.memory(subject)`` inside durable functions: a worker SIGKILLed after four memory
writes and a resumed run that replays them (real subprocesses, both stores). Each write is
keyed by (run, write number): nothing is applied twice and a deleted item stays deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tests.durable.apps.sandbox import Sandbox, lines, result, wait_for
from tests.memory.apps import memory_app

APP = "tests.memory.apps.memory_app:th"


@pytest.fixture
def sandbox(tmp_path: Path, store_url: str) -> Iterator[Sandbox]:
    with Sandbox(tmp_path, store_url) as box:
        yield box


@pytest.mark.parametrize("function", ["remember-sync", "remember-async"])
def test_a_resumed_run_applies_no_memory_write_twice(sandbox: Sandbox, function: str) -> None:
    th = memory_app.build(sandbox.url)
    try:
        data = {
            "subject": f"user:{function}",
            "begun": str(sandbox.dir / "begun.txt"),
            "release": str(sandbox.dir / "release"),
        }
        handle = th.enqueue(function, data)
        first = sandbox.worker(ref=APP)
        wait_for(lambda: lines(Path(data["begun"])), 60, "the gate step to start")
        sandbox.kill(first)
        Path(data["release"]).touch()
        sandbox.worker(ref=APP)
        ids = result(sandbox, handle, timeout=60)
        assert len(lines(Path(data["begun"]))) == 2  # the gate ran again: a real resume

        mem = th.memory(data["subject"])
        assert [(m.id, m.text) for m in mem.list()] == [
            (ids["b2"], "Allergic to shellfish and peanuts"),
            (ids["c"], "Pays in euros"),
        ]
        exported = mem.export()
        assert [(e["id"], e["current"]) for e in exported] == [
            (ids["b"], False),
            (ids["b2"], True),
            (ids["c"], True),
        ]
        with pytest.raises(tether.MemoryNotFound):
            mem.get(ids["a"])
        assert mem.search("aisle seat") == []
        (writes,) = sandbox.query(
            f"SELECT count(*) FROM memory_writes WHERE subject='{data['subject']}'"
        )[0]
        assert writes == 5
    finally:
        th.close()

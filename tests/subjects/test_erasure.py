"""No residue on SQLite (DESIGN 4b): after ``forget()`` returns, a raw byte scan of the
store file, its -wal and its -shm finds none of the subject's text — run inputs and
outputs, step outputs, attempt errors, event data, preferences — while the other
subject's text is still there (so the scan can see it). A reader holding an old snapshot
blocks the WAL's truncation: ``forget()`` says so, and a second call finishes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import tether
from tether.testing import poll

# Distinctive strings, each stored in a different place (lower case: what an index keeps).
GONE = {
    "input": "zq7inputsecret",
    "step": "zq7stepsecret",
    "attempt": "zq7attemptsecret",
    "output": "zq7outputsecret",
    "preference": "zq7prefsecret",
}
KEPT = "zq7keptforother"


def raw(path: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            out += part.read_bytes()
    return out


def found(path: Path) -> set[str]:
    data = raw(path).lower()
    return {k for k, v in GONE.items() if v[:10].encode() in data}


def build(th: tether.Harness) -> None:
    @th.function(
        id="secretive",
        trigger=tether.on_event("said"),
        subject="event.data.user",
        retries=tether.Retry(max_attempts=2, initial=0.01, jitter=False),
    )
    def secretive(ctx: tether.SyncContext) -> dict[str, Any]:
        data = ctx.event.data

        def flaky() -> str:
            if ctx.attempt == 0:
                raise RuntimeError("boom " + data.get("attempt", ""))
            return "ok"

        step = ctx.step.run("remember", lambda: {"kept": data.get("step", "")})
        ctx.step.run("flaky", flaky)
        return {"said": data.get("output", ""), "step": step}


def fill(th: tether.Harness, path: Path) -> None:
    build(th)
    with th.worker(concurrency=2):
        th.send(
            tether.Event(
                "said",
                {
                    "user": "user:gone",
                    "text": GONE["input"],
                    "step": GONE["step"],
                    "attempt": GONE["attempt"],
                    "output": GONE["output"],
                },
            )
        )
        th.send(tether.Event("said", {"user": "user:kept", "text": KEPT, "output": KEPT}))
        poll(
            lambda: len(th.list_runs(status="completed")) == 2,
            timeout=30,
        )
    th.subject("user:gone").preferences["note"] = GONE["preference"]
    th.subject("user:kept").preferences["note"] = KEPT


def test_no_byte_of_a_forgotten_subject_stays_in_the_file_or_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    th = tether.Harness(f"sqlite:///{path}")
    fill(th, path)
    assert found(path) == set(GONE)  # the scan sees every string before
    done = th.subject("user:gone").forget()
    assert done.erased, done.residue
    assert found(path) == set(), found(path)
    assert KEPT.encode() in raw(path)  # the other subject's data is still readable
    assert th.subject("user:kept").preferences["note"] == KEPT
    th.close()
    assert found(path) == set()


def test_a_reader_blocking_the_checkpoint_is_reported_and_a_second_forget_finishes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tether.db"
    th = tether.Harness(f"sqlite:///{path}")
    fill(th, path)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM runs").fetchone()  # holds a snapshot of the WAL
    try:
        done = th.subject("user:gone").forget(erase_timeout=0.5)
        assert not done.erased
        assert done.residue is not None and "could not be checkpointed" in done.residue
        assert done["runs"] == 1  # the rows are deleted all the same
    finally:
        reader.execute("COMMIT")
        reader.close()
    again = th._subject("user:gone").forget()
    assert again.erased and sum(again.values()) == 0
    assert found(path) == set()
    th.close()

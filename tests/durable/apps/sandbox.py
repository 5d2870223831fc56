"""A store (a SQLite file under tmp_path, or a PostgreSQL schema) plus the worker
subprocesses the crash tests start and kill.

The test process only enqueues, sends and reads (``Sandbox.harness``); runs execute in
``tether worker`` subprocesses on the same store, which the tests SIGKILL.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import tether
from tests.durable.apps import durable_app

APP_FILE = Path(durable_app.__file__)
ROOT = APP_FILE.parents[3]
TETHER = Path(sys.executable).parent / "tether"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    limit = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= limit:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def proc_status(pid: int) -> dict[str, int]:
    """Resident memory (kB) and thread count of a live process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()[0] if value.split() else ""
    return {"rss_kb": int(fields["VmRSS"]), "threads": int(fields["Threads"])}


class Sandbox:
    """One store, the test process's harness on it, and subprocesses."""

    def __init__(self, tmp_path: Path, url: str | None = None) -> None:
        self.dir = tmp_path
        self.db = tmp_path / "tether.db"
        self.url = url or f"sqlite:///{self.db}"
        self.harness = durable_app.build(self.url)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "TETHER_STORE": self.url, "PYTHONUNBUFFERED": "1"}

    # -- files the steps write -----------------------------------------------------------
    def step_files(self, gate: int) -> dict[str, Any]:
        """Run input naming the side-effect files; step ``gate`` blocks until released."""
        return {
            "begun": str(self.dir / "begun.txt"),
            "effects": str(self.dir / "effects.txt"),
            "release": str(self.dir / "release"),
            "gate": gate,
        }

    # -- subprocesses -------------------------------------------------------------------
    def _spawn(self, args: list[str], name: str, **kw: Any) -> subprocess.Popen[bytes]:
        log = self.dir / f"{name}-{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=kw.pop("stdout", out), stderr=out, **kw
            )
        self.procs.append(proc)
        return proc

    def worker(
        self, concurrency: int = 4, ref: str = "tests.durable.apps.durable_app:th"
    ) -> subprocess.Popen[bytes]:
        """``tether worker REF`` (by default the durable test app) on this store."""
        return self._spawn([str(TETHER), "worker", ref, "-c", str(concurrency)], "worker")

    def sender(self, event_id: str) -> subprocess.Popen[bytes]:
        """A process that sends one ``order.placed`` event, prints ``sent`` and hangs."""
        args = [sys.executable, str(APP_FILE), "send", event_id]
        return self._spawn(args, "sender", stdout=subprocess.PIPE)

    def read_line(self, proc: subprocess.Popen[bytes], timeout: float) -> str:
        """The next line the process prints, waiting at most ``timeout`` seconds."""
        stream: IO[bytes] | None = proc.stdout
        assert stream is not None
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            raise AssertionError(f"pid {proc.pid} printed nothing within {timeout}s\n{self.logs()}")
        return stream.readline().decode().strip()

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no clean shutdown, no lease given back, nothing flushed."""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.dir.glob("*.log"))
        )

    def query(self, sql: str) -> list[Any]:
        """Read the store directly, on a connection of its own (read-only for SQLite)."""
        if self.url.startswith("postgresql"):
            from urllib.parse import parse_qs, urlsplit

            import psycopg

            schema = parse_qs(urlsplit(self.url).query)["schema"][0]
            base = self.url.split("?", 1)[0]
            with psycopg.connect(base, autocommit=True) as pg:
                pg.execute(f'SET search_path TO "{schema}"')
                return pg.execute(sql).fetchall()
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def status_counts(self) -> dict[str, int]:
        """Runs per status (cheap enough to poll, unlike listing 10,000 runs)."""
        return dict(self.query("SELECT status, count(*) FROM runs GROUP BY status"))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.harness.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def result(sandbox: Sandbox, handle: tether.RunHandle, timeout: float) -> Any:
    """The run's output; on failure or timeout, the worker logs join the error."""
    try:
        return handle.result(timeout=timeout)
    except (tether.RunTimeout, tether.RunFailed) as exc:
        raise AssertionError(f"{exc}\n{sandbox.logs()}") from exc

"""Shared fixtures: harnesses on a fresh store of each backend.

``store_url`` (and ``th``, ``vth`` built on it) is parametrised over SQLite and PostgreSQL
for the conformance suite (tests/durable, tests/flow, tests/store): every test there runs
on both backends. A SQLite store is a file under tmp_path; a PostgreSQL store is a schema
of its own in the ``test`` database, dropped afterwards. Without a reachable server the
PostgreSQL variants are skipped with the reason, unless ``TETHER_REQUIRE_POSTGRES=1``
(set by ``.ci/run``), which makes them fail instead.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tether

PG_URL = os.environ.get("TETHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CONFORMANCE = ("durable", "flow", "store", "memory")
# Tests that read or break the SQLite file itself have no PostgreSQL counterpart here.
SQLITE_ONLY = "SQLite-specific: reads or damages the SQLite file directly"


@functools.cache
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return 'psycopg is not installed (pip install -e ".[dev,postgres]")'
    try:
        psycopg.connect(PG_URL, connect_timeout=2).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({str(exc).strip()})"
    return None


def require_postgres() -> str:
    """The server URL, or skip (fail under TETHER_REQUIRE_POSTGRES=1) with the reason."""
    reason = postgres_unavailable()
    if reason is not None:
        if os.environ.get("TETHER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"TETHER_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return PG_URL


def pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema={schema}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the conformance suite on both backends; other tests stay on SQLite."""
    if "backend" not in metafunc.fixturenames:
        return
    parts = Path(str(metafunc.definition.path)).parts
    if any(part in CONFORMANCE for part in parts[-3:-1]):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("backend") != "postgres":
            continue
        if "fresh_read" in getattr(item, "fixturenames", ()) or item.path.name.startswith(
            "test_sqlite"
        ):
            item.add_marker(pytest.mark.skip(reason=SQLITE_ONLY))
        else:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'tether.db'}"
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield pg_schema_url(schema)
    drop_schema(schema)


@pytest.fixture
def th(store_url: str) -> Iterator[tether.Harness]:
    """A harness on a fresh store, wall-clock time."""
    harness = tether.Harness(store_url)
    yield harness
    harness.close()


@pytest.fixture
def vth(store_url: str) -> Iterator[tether.Harness]:
    """A harness on a fresh store with a virtual clock (sleeps elapse at once)."""
    harness = tether.Harness(store_url, clock=tether.VirtualClock())
    yield harness
    harness.close()


@pytest.fixture
def fresh_read(tmp_path: Path) -> Callable[..., list[Any]]:
    """Query a store file through a new connection of its own, not tether's: what is on disk.

    ``fresh_read(sql, *params, path=None)``; the default path is the ``store_url`` file."""

    def read(sql: str, *params: Any, path: Path | str | None = None) -> list[Any]:
        conn = sqlite3.connect(path or tmp_path / "tether.db")
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    return read


@pytest.fixture(scope="session")
def minilm() -> object:
    """The local embedding model, loaded once per test run (skips without the extra).

    ``load_model`` is a process-wide cache, so tests elsewhere that embed through
    ``tether.llm.embed("local:all-minilm-l6-v2", ...)`` reuse this same instance."""
    from tether.llm import MissingExtra
    from tether.llm.providers import local_embed

    try:
        local_embed.check_installed()
    except MissingExtra as exc:
        pytest.skip(str(exc))
    model = local_embed.load_model()
    import torch

    # The test machine's 2 cores are shared with other processes: one intra-op thread keeps
    # OpenMP from spinning against them (3x faster there; production keeps torch's default).
    torch.set_num_threads(1)
    return model

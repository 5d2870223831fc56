"""Shared fixtures: harnesses on real SQLite files under tmp_path."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tether


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tether.db'}"


@pytest.fixture
def th(store_url: str) -> Iterator[tether.Harness]:
    """A harness on a fresh SQLite file, wall-clock time."""
    harness = tether.Harness(store_url)
    yield harness
    harness.close()


@pytest.fixture
def vth(store_url: str) -> Iterator[tether.Harness]:
    """A harness on a fresh SQLite file with a virtual clock (sleeps elapse at once)."""
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

"""Shared fixtures: harnesses on real SQLite files under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

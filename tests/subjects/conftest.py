"""Subjects fixtures: the tests here run on both stores where they say so with
``BOTH_STORES`` (SQLite file under tmp_path, PostgreSQL schema of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tether

BOTH_STORES = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def sth(store_url: str) -> Iterator[tether.Harness]:
    """A harness on the test's store with full-text memory only (no model to load)."""
    harness = tether.Harness(store_url, embedder=None)
    yield harness
    harness.close()

"""Memory tests run on both stores (``store_url`` is parametrised here as in tests/store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tether


@pytest.fixture
def text_th(store_url: str) -> Iterator[tether.Harness]:
    """A harness whose memory has no embedder: full-text retrieval only, no model loaded."""
    harness = tether.Harness(store_url, embedder=None)
    yield harness
    harness.close()


@pytest.fixture
def mth(store_url: str, minilm: object) -> Iterator[tether.Harness]:
    """A harness with the default embedder (the real local model, loaded once per session)."""
    harness = tether.Harness(store_url)
    yield harness
    harness.close()

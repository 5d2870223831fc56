"""Fixtures for tether.evals: a FakeLLMServer on loopback and model strings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tether.llm import MemoryCircuitStore, default_breaker
from tether.testing import FakeLLMServer

try:  # tether.testing exports the wire types once FakeLLMServer lives there
    from tether.testing import RecordedRequest, Reply  # type: ignore[attr-defined]
except ImportError:
    from tether.llm.fake_server import RecordedRequest, Reply

__all__ = ["FakeLLMServer", "RecordedRequest", "Reply", "model"]


@pytest.fixture(autouse=True)
def _fresh_breaker() -> Iterator[None]:
    """The process-wide circuit breaker starts every test closed."""
    breaker = default_breaker()
    breaker.store = MemoryCircuitStore()
    yield
    breaker.store = MemoryCircuitStore()


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def model(server: FakeLLMServer, name: str) -> str:
    """An ``openai-compatible:`` model string answered by ``server`` as ``name``."""
    return f"openai-compatible:{server.url}/v1#{name}"

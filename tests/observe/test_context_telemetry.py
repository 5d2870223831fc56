"""A context window's build report on the span of the LLM call's step and as metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tether
from tests.observe.test_otel import Telemetry
from tether.context import extractive_summarizer
from tether.observe import instrument
from tether.testing import FakeLLMServer, temporary_harness


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        fake.set_default(tether.testing.Reply("noted"))
        yield fake


def test_context_report_as_span_attributes_and_metrics(
    telemetry: Telemetry, server: FakeLLMServer
) -> None:
    model = f"openai-compatible:{server.url}/v1#tiny"
    with temporary_harness() as th:

        @th.function()
        async def chat(ctx: tether.Context) -> int:
            conv = ctx.context("obs", budget=600, summarizer=extractive_summarizer)
            await conv.pin("id", "ticket TCK-1")
            for i in range(12):
                await conv.add("user", f"turn {i}: check srv-{i} " + "words " * 20)
                await ctx.step.llm("reply", model=model, context=conv, max_tokens=16)
            return 0

        instrument(
            th, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        th.run(chat)

    spans = [
        s for s in telemetry.spans() if s.attributes and "tether.context.tokens" in s.attributes
    ]
    assert spans, "no span carries the context report"
    attrs = spans[-1].attributes
    assert attrs is not None
    assert attrs["tether.context.key"] == "obs" and attrs["tether.context.budget"] == 600
    assert 0 < int(attrs["tether.context.tokens"]) <= 600  # type: ignore[arg-type]
    slots = sum(int(v) for k, v in attrs.items() if k.startswith("tether.context.slot."))  # type: ignore[arg-type]
    assert slots == attrs["tether.context.tokens"]
    assert any(s.name.startswith("attempt") or s.name.startswith("step") for s in spans)
    metrics = telemetry.metrics()
    assert metrics["tether.context.tokens"] and metrics["tether.context.usage"]
    assert sum(p.value for p in metrics["tether.context.compactions"]) >= 1
    assert sum(p.value for p in metrics["tether.context.tokens_saved"]) > 0

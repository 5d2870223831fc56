"""``memory=True``: the subject's long-term memories come into the memory slot by relevance;
``extract=True``: facts go to the subject's memory through the durable step
``context.extract``, with their provenance, superseding the facts they update, and not at
all when the subject's preferences turn memory off. Full-text memory (``embedder=None``)
keeps these tests fast; the model is a FakeLLMServer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.testing import FakeLLMServer, Reply


@pytest.fixture
def th(tmp_path: Path) -> Iterator[tether.Harness]:
    harness = tether.Harness(f"sqlite:///{tmp_path / 'm.db'}", embedder=None)
    yield harness
    harness.close()


def test_memories_are_retrieved_into_the_memory_slot(th: tether.Harness) -> None:
    fact = th.memory("user:1").add("The customer's dog is called Biscuit.")
    th.memory("user:2").add("Another customer's dog is called Rex.")
    conv = th.context("m:1", budget=600, subject="user:1", memory=True)
    for i in range(40):
        conv.add("user", f"Question {i} about invoice INV-{i} " + "text " * 20)
        conv.add("assistant", f"Answer {i}.")
    conv.add("user", "What is the name of my dog?")
    built = conv.build()
    assert f"memory:{fact.id}" in built.report.retrieved
    assert "Biscuit" in built.messages[0].content and "Rex" not in built.messages[0].content
    assert built.report.slots["memory"] > 0 and built.report.tokens <= 600
    with pytest.raises(tether.ConfigurationError, match="subject="):
        th.context("m:2", budget=600, memory=True)


FACT_ID = re.compile(r"- \[(\w+)\] The user lives in Berlin")


def extractor(request: Any) -> Reply:
    prompt = request.prompt
    if "long-term memory" not in prompt:
        return Reply("Noted.")
    said = prompt.split("New messages:")[-1]
    facts = []
    if "Berlin" in said:
        facts.append({"text": "The user lives in Berlin.", "item": None})
    if "Paris" in said:
        old = FACT_ID.search(prompt)
        facts.append(
            {"text": "The user lives in Paris.", "supersedes": old.group(1) if old else None}
        )
    return Reply(json.dumps({"facts": facts}))


def test_extraction_keeps_provenance_and_supersedes(th: tether.Harness) -> None:
    with FakeLLMServer() as fake:
        fake.set_default(extractor)
        model = f"openai-compatible:{fake.url}/v1#tiny"

        @th.function(id="talk")
        async def talk(ctx: tether.Context) -> str:
            d = ctx.event.data
            conv = ctx.context(
                "talk:" + d["user"], budget=2000, subject=d["user"], memory=True, extract=True
            )
            await conv.add("user", d["text"])
            resp = await ctx.step.llm("reply", model=model, context=conv)
            await ctx.step.sleep("pause", 0.01)  # the body runs again: nothing applied twice
            return str(resp.text)

        th.run(talk, {"user": "user:1", "text": "Hi, I live in Berlin."})
        memory = th.memory("user:1")
        (first,) = memory.list()
        run1 = th.list_runs("talk")[0]
        assert first.text == "The user lives in Berlin."
        assert first.source == f"window:talk:user:1#item:1#run:{run1.id}"
        assert "context.extract" in [s.id for s in th.get_run(run1.id).steps]

        th.run(talk, {"user": "user:1", "text": "I just moved to Paris."})
        (current,) = memory.list()
        assert current.text == "The user lives in Paris." and current.supersedes == first.id
        extraction_prompts = [r.prompt for r in fake.requests if "long-term memory" in r.prompt]
        assert len(extraction_prompts) == 2
        assert "Hi, I live in Berlin." not in extraction_prompts[1].split("New messages:")[-1]

        th.subject("user:2").preferences["memory"] = False
        before = len(fake.requests)
        th.run(talk, {"user": "user:2", "text": "I live in Berlin."})
        assert th.memory("user:2").list() == []
        assert len(fake.requests) == before + 1  # the reply only: no extraction call

"""Property tests: random logs (interleaved user and assistant messages, tool calls with
results that come late or never, pins, unpins, compactions) and random budgets; every build
keeps every invariant, for every provider family."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.context.helpers import COUNTER, assert_valid
from tether.context import (
    CompactionRejected,
    ContextBudgetError,
    MemoryWindowLog,
    WindowCore,
    acompact,
    extractive_summarizer,
)
from tether.context.wire import check_openai_chat
from tether.llm.types import Message, ToolCall

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "ORD-1182",
    "/srv/app.py",
    "4417",
    "paris",
    "budget",
    "deploy",
    "rollback",
]


def text(words: int, seed: int) -> str:
    return " ".join(WORDS[(seed + i * 7) % len(WORDS)] for i in range(words))


messages_and_tools = [
    st.tuples(st.just("user"), st.integers(0, 60)),
    st.tuples(st.just("assistant"), st.integers(0, 60)),
    st.tuples(st.just("calls"), st.integers(1, 3)),
    st.tuples(st.just("result"), st.sampled_from([1, 30, 150, 400])),
    st.tuples(st.just("result"), st.sampled_from([1, 30, 150, 400])),
]
op = st.one_of(
    *messages_and_tools,
    st.tuples(st.just("pin"), st.integers(0, 2)),
    st.tuples(st.just("unpin"), st.integers(0, 2)),
    st.tuples(st.just("compact"), st.just(0)),
)
# an agent loop: one task, then mostly tool calls and results, never compacted
agent_op = st.one_of(*messages_and_tools[2:], *messages_and_tools[2:], messages_and_tools[1])


@dataclass
class Sim:
    w: WindowCore
    pending: list[str] = field(default_factory=list)
    n: int = 0

    def apply(self, kind: str, arg: int) -> None:
        self.n += 1
        w = self.w
        if kind == "user":
            w.add("user", text(arg, self.n))
        elif kind == "assistant":
            w.add("assistant", text(arg, self.n))
        elif kind == "calls":
            ids = [f"c{self.n}-{i}" for i in range(arg)]
            calls = [ToolCall(id=i, name=f"tool{j}", arguments={"n": j}) for j, i in enumerate(ids)]
            w.add(Message(role="assistant", content=text(self.n % 3, self.n), tool_calls=calls))
            self.pending += ids
        elif kind == "result" and self.pending:
            call_id = self.pending.pop(self.n % len(self.pending))  # any order, maybe late
            w.add("tool", text(arg, self.n), tool_call_id=call_id)
        elif kind == "pin":
            with contextlib.suppress(ContextBudgetError):  # refused: the pins would not fit
                w.pin(f"p{arg}", f"fact {arg}: " + text(5 + arg, self.n))
        elif kind == "unpin" and f"p{arg}" in w.log.pins():
            w.unpin(f"p{arg}")
        elif kind == "compact":
            with contextlib.suppress(CompactionRejected):  # refused: the window is unchanged
                asyncio.run(
                    acompact(
                        w.log,
                        budget=w.budget,
                        system=w.system,
                        summarizer=extractive_summarizer,
                        force=True,
                    )
                )


@settings(
    max_examples=int(os.environ.get("CONTEXT_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ops=st.lists(op, min_size=1, max_size=40)
    | st.lists(op, min_size=60, max_size=200)
    | st.lists(agent_op, min_size=20, max_size=120).map(lambda ops: [("user", 20), *ops]),
    budget=st.integers(120, 4000),
    system=st.sampled_from(
        [None, "You are terse.", "Follow the policy:\n1. be kind\n2. cite " * 3]
    ),
    query=st.sampled_from([None, "paris budget", "ORD-1182"]),
)
def test_every_build_keeps_every_invariant(
    ops: list[tuple[str, int]], budget: int, system: str | None, query: str | None
) -> None:
    sim = Sim(WindowCore(MemoryWindowLog(), budget=budget, system=system))
    for kind, arg in ops:
        sim.apply(kind, arg)
    window = WindowCore(sim.w.log, budget=budget, system=system)
    pins = window.log.pins()
    head = "\n".join([system or "", *(p.text or "" for p in pins.values())])
    try:
        built = window.build(query)
    except ContextBudgetError as exc:
        event("budget too small")
        assert exc.budget == budget and exc.needed > budget  # the error's numbers are honest
        # only a tight budget refuses: the system prompt, three short pins and the newest
        # user message shortened to a stub take under 300 tokens here
        assert budget < 300 and COUNTER.count(head) < exc.needed
        return
    messages = built.messages
    if all(m.role == "system" for m in messages):
        # no user message to answer: the system prompt alone (OpenAI takes it; Anthropic
        # and Gemini need a user message, which only the application can add)
        live = [
            i
            for i in window.items()
            if i.message and i.message.role == "user" and i.content.strip()
        ]
        assert not live or summary_covers(window, live[-1].seq)
        check_openai_chat(messages)
        return
    assert_valid(built)
    report = built.report
    for name, happened in [
        ("stubbed", report.stubbed),
        ("cleared", report.cleared),
        ("dropped", report.dropped),
        ("retrieved", report.retrieved),
        ("summary", report.summarized_through),
        ("omitted calls", report.omitted_calls),
    ]:
        if happened:
            event(name)
    if system or pins:
        assert messages[0].role == "system"
        assert messages[0].content.startswith(system or "")
        for p in pins.values():
            assert p.text and p.text in messages[0].content
    calls = {c.id for m in messages for c in m.tool_calls}
    results = [m.tool_call_id for m in messages if m.role == "tool"]
    assert sorted(calls) == sorted(results) and len(set(results)) == len(results)
    for handle in built.report.stubbed + built.report.cleared:
        assert any(f'recall(handle="{handle}")' in m.content for m in messages)
        assert window.recall(handle)
    included = built.included()
    seqs = {i.seq for i in window.items()}
    for rid in built.report.retrieved:
        if rid.startswith("item:"):
            assert int(rid[5:]) in seqs and int(rid[5:]) not in included
    assert built.report.slots["memory"] <= 0.10 * budget + 1
    users = [
        i for i in window.items() if i.message and i.message.role == "user" and i.content.strip()
    ]
    summary = window.log.summary()
    if users and (summary is None or users[-1].seq > (summary.through_seq or 0)):
        assert users[-1].seq in included  # the newest question is always there


def summary_covers(window: WindowCore, seq: int) -> bool:
    summary = window.log.summary()
    return summary is not None and seq <= (summary.through_seq or 0) and seq not in summary.kept

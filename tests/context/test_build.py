"""The build pipeline: each action, in order, and the report that says what it did."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.context.helpers import COUNTER, assert_valid, chat, tool_turn, window
from tether.context import (
    BuiltContext,
    ContextBudgetError,
    ContextItem,
    ContextReport,
    ContextSettings,
    Hit,
    MemoryWindowLog,
    build,
    message_item,
    recall,
)
from tether.llm.types import Message, ToolCall


def test_a_window_that_fits_is_sent_whole() -> None:
    w = window(budget=4000)
    chat(w, 3)
    built = w.build()
    assert_valid(built)
    assert [m.role for m in built.messages] == ["system"] + ["user", "assistant"] * 3
    assert built.messages[0].content == "You are a careful assistant."
    assert built.report.tokens == COUNTER.count_messages(built.messages)
    assert built.report.trigger == "none" and built.report.dropped == 0
    assert built.report.full_tokens == built.report.tokens
    assert built.included() == {i.seq for i in w.items()}


def test_system_prompt_first_and_pins_verbatim() -> None:
    w = window(budget=3000, system="Rules:\n- be brief")
    w.pin("customer", "Name: Zoë O'Brien\nAccount: ACC-00917 (gold)")
    w.pin("plan", "old plan")
    w.pin("plan", "step 1: check /etc/app/config.yaml; step 2: restart")
    w.pin("gone", "temporary")
    w.unpin("gone")
    chat(w, 40)
    built = w.build()
    assert_valid(built)
    head = built.messages[0]
    assert head.role == "system" and head.content.startswith("Rules:\n- be brief")
    assert "Name: Zoë O'Brien\nAccount: ACC-00917 (gold)" in head.content
    assert "step 1: check /etc/app/config.yaml; step 2: restart" in head.content
    assert "old plan" not in head.content and "temporary" not in head.content
    assert head.content.index("[customer]") < head.content.index("[plan]")  # stable order
    assert built.report.slots["pinned"] > 0
    assert all(m.role != "system" for m in built.messages[1:])


def test_large_tool_results_become_stubs_first() -> None:
    w = window(budget=1400)
    w.add("user", "find the report")
    big = "BEGIN " + "data " * 1200 + " END"
    tool_turn(w, "c1", big)
    w.add("assistant", "Found it.")
    w.add("user", "thanks, now summarize it")
    built = w.build()
    assert_valid(built)
    artifact = next(i for i in w.items() if i.kind == "artifact")
    assert built.report.stubbed == [artifact.handle]
    stub = next(m for m in built.messages if m.role == "tool")
    assert f'recall(handle="{artifact.handle}")' in stub.content
    assert stub.content.count("BEGIN") == 1 and "END" in stub.content
    assert built.report.dropped == 0  # stubbing was enough: every turn stays
    assert w.recall(artifact.handle or "") == big


def test_old_tool_results_are_cleared_the_newest_kept() -> None:
    w = window(budget=1500, settings=ContextSettings(keep_tool_results=3))
    w.add("user", "run the checks")
    for i in range(8):
        tool_turn(w, f"c{i}", f"result {i} " + "x" * 1200)  # under artifact_chars: clearable only
    built = w.build()
    assert_valid(built)
    results = {m.tool_call_id: m.content for m in built.messages if m.role == "tool"}
    for i in range(5, 8):
        assert results[f"c{i}"].startswith(f"result {i} ")  # the newest three verbatim
    cleared = [cid for cid, text in results.items() if "cleared to fit" in text]
    assert cleared and set(cleared) <= {f"c{i}" for i in range(5)}
    handle = built.report.cleared[0]
    assert handle.startswith("item:") and f'recall(handle="{handle}")' in results[cleared[0]]
    assert w.recall(handle).startswith("result ")


def test_older_turns_leave_whole_and_come_back_by_relevance() -> None:
    w = window(budget=1000)
    w.add("user", "My locker code is 4417, remember it for me.")
    w.add("assistant", "Noted: locker code 4417.")
    chat(w, 30, pad=10)
    w.add("user", "What was my locker code again?")
    built = w.build()
    assert_valid(built)
    report = built.report
    assert report.dropped > 0 and report.trigger == "hard"
    assert built.messages[1].role == "user"  # the window starts on a user message
    assert built.messages[-1].content == "What was my locker code again?"
    fact_seqs = {f"item:{i.seq}" for i in w.items() if "4417" in i.content}
    assert set(report.retrieved) & fact_seqs
    assert "4417" in built.messages[0].content
    assert 0 < report.slots["memory"] <= 0.10 * 1000


def test_tool_pairs_are_never_split() -> None:
    for budget in range(300, 1600, 50):
        w = window(budget=budget)
        for t in range(6):
            w.add("user", f"task {t} " + "words " * 20)
            tool_turn(w, f"a{t}", "r" * 300)
            tool_turn(w, f"b{t}", "s" * 300, text="and another")
            w.add("assistant", "done " * 10)
        built = w.build()
        assert_valid(built)
        calls = {c.id for m in built.messages for c in m.tool_calls}
        results = {m.tool_call_id for m in built.messages if m.role == "tool"}
        assert calls == results, budget


def test_unanswered_calls_are_left_out() -> None:
    w = window()
    w.add("user", "look up two things")
    w.add(
        Message(
            role="assistant",
            content="Checking both.",
            tool_calls=[ToolCall(id="ok", name="f"), ToolCall(id="lost", name="g")],
        )
    )
    w.add("tool", "answer", tool_call_id="ok")
    w.add("user", "and now?")
    w.add(Message(role="assistant", content="", tool_calls=[ToolCall(id="pending", name="h")]))
    built = w.build()
    assert_valid(built)
    sent = [c.id for m in built.messages for c in m.tool_calls]
    assert sent == ["ok"]
    assert built.report.omitted_calls == ["lost", "pending"]
    assert built.messages[-1].content == "and now?"


def test_a_late_result_is_placed_right_after_its_call() -> None:
    w = window()
    w.add("user", "start a slow job")
    w.add(Message(role="assistant", tool_calls=[ToolCall(id="slow", name="job")]))
    w.add("user", "are you there?")
    w.add("tool", "job finished", tool_call_id="slow")
    built = w.build()
    assert_valid(built)
    assert [m.role for m in built.messages] == ["system", "user", "assistant", "tool", "user"]


def test_an_agent_task_keeps_its_instruction_and_newest_steps() -> None:
    w = window(budget=1200)
    w.add("user", "TASK: migrate the database; never drop tables.")
    for i in range(40):
        tool_turn(w, f"s{i}", f"step {i} output " + "o" * 400)
    built = w.build()
    assert_valid(built)
    assert built.messages[1].content == "TASK: migrate the database; never drop tables."
    last = [m for m in built.messages if m.role == "tool"][-1]
    assert last.tool_call_id == "s39" and last.content.startswith("step 39 output")
    assert built.report.dropped > 0


def test_an_oversized_newest_message_is_cut_and_recallable() -> None:
    w = window(budget=500)
    chat(w, 2)
    huge = "HEAD " + "q" * 8000 + " TAIL"
    item = w.add("user", huge)
    built = w.build()
    assert_valid(built)
    assert built.messages[-1].content.startswith("[")
    assert f"item:{item.seq}" in built.report.stubbed
    assert w.recall(f"item:{item.seq}") == huge


def test_consecutive_user_messages_are_merged() -> None:
    w = window()
    a = w.add("user", "first part")
    b = w.add("user", "second part")
    w.add("assistant", "ok")
    c = w.add("assistant", "and more")
    built = w.build()
    assert_valid(built)
    assert [m.content for m in built.messages[1:]] == [
        "first part\n\nsecond part",
        "ok\n\nand more",
    ]
    assert built.sources[1] == [a.seq, b.seq] and c.seq in built.sources[2]


def test_a_log_that_starts_with_the_assistant() -> None:
    w = window()
    w.add("assistant", "Hi! How can I help?")
    w.add("user", "hello")
    built = w.build()
    assert_valid(built)
    assert [m.role for m in built.messages] == ["system", "user"]


def test_summary_stands_for_the_turns_it_covers() -> None:
    log = MemoryWindowLog()
    w = window(budget=4000)
    w.log = log
    chat(w, 6)
    items = log.items()
    log.append(
        [
            ContextItem(
                kind="summary",
                text="Goal: greet.\nProgress: six exchanges.",
                from_seq=1,
                through_seq=items[5].seq,
                meta={"previous": None},
            )
        ]
    )
    built = w.build()
    assert_valid(built)
    assert "Goal: greet." in built.messages[0].content
    assert built.report.summarized_through == items[5].seq
    assert min(built.included()) == items[6].seq
    assert built.report.slots["summary"] > 0


@pytest.mark.parametrize(("pairs", "trigger"), [(10, "none"), (26, "soft"), (32, "hard")])
def test_triggers(pairs: int, trigger: str) -> None:
    w = window(budget=1000, system=None)
    chat(w, pairs, pad=2)  # about 28 tokens a pair
    built = w.build()
    full = built.report.full_tokens
    assert built.report.trigger == trigger, full
    assert (full >= 700) == (trigger != "none") and (full >= 850) == (trigger == "hard")


class Padded:
    """A counter that is not additive: a long list costs extra (as real chat templates can)."""

    def count(self, text: str) -> int:
        return COUNTER.count(text)

    def count_messages(self, messages: Sequence[Message]) -> int:
        n = COUNTER.count_messages(messages)
        return n + (len(messages) // 3) * 5


def test_a_counter_that_is_not_additive_is_still_never_over_budget() -> None:
    w = window(budget=700, counter=Padded())
    chat(w, 30)
    built = w.build()
    assert built.report.tokens == Padded().count_messages(built.messages) <= 700
    assert sum(built.report.slots.values()) == built.report.tokens


class Memories:
    def __init__(self, hits: list[Hit]) -> None:
        self.hits = hits
        self.queries: list[str] = []

    def search(self, query: str, k: int) -> list[Hit]:
        self.queries.append(query)
        return self.hits[:k]


def test_injected_retrievers_fill_the_memory_slot() -> None:
    mem = Memories([Hit(id="memory:m1", text="The user prefers metric units.", score=0.9)])
    w = window(budget=900, retriever=mem)
    chat(w, 30)
    w.add("user", "How tall is the tower?")
    built = w.build()
    assert_valid(built)
    assert mem.queries == ["How tall is the tower?"]
    assert built.report.retrieved == ["memory:m1"]
    assert "The user prefers metric units." in built.messages[0].content
    built = w.build(query="units")
    assert mem.queries[-1] == "units"
    fused = window(
        budget=900, retriever=[mem, Memories([Hit(id="memory:m2", text="Lives in Oslo.", score=3)])]
    )
    chat(fused, 30)
    assert set(fused.build().report.retrieved) == {"memory:m1", "memory:m2"}


def test_items_and_logs_both_build() -> None:
    log = MemoryWindowLog()
    log.append([message_item(Message(role="user", content="hi"))])
    assert build(log, budget=100).messages == build(log.items(), budget=100).messages


def test_reports_and_builds_round_trip_json() -> None:
    w = window(budget=800)
    chat(w, 20)
    tool_turn(w, "c", "z" * 5000)
    built = w.build()
    assert ContextReport.model_validate(built.report.model_dump(mode="json")) == built.report
    assert BuiltContext.model_validate(built.model_dump(mode="json")) == built


def test_the_newest_turn_too_big_for_any_budget() -> None:
    w = window(budget=90, system="S" * 200)
    w.add("user", "x" * 5000)
    with pytest.raises(ContextBudgetError, match="newest user message"):
        w.build()


def test_recall_of_unknown_handles() -> None:
    from tether.context import ArtifactNotFound

    w = window()
    w.add("user", "x")
    for handle in ("art_123456789abc", "item:99", "item:x", "nonsense"):
        with pytest.raises(ArtifactNotFound, match="report.stubbed"):
            recall(w.log, handle)


def test_a_result_is_named_after_its_call() -> None:
    """Gemini matches function responses to calls by name: a result's name follows its call."""
    w = window()
    w.add("user", "weather?")
    w.add(Message(role="assistant", tool_calls=[ToolCall(id="w1", name="get_weather")]))
    w.add("tool", "sunny", tool_call_id="w1", name="weather_tool_v2")
    w.add("user", "thanks")
    built = w.build()
    assert_valid(built)
    assert [m.name for m in built.messages if m.role == "tool"] == ["get_weather"]


class Greedy:
    """A counter that charges a lot for every list of two or more messages."""

    def count(self, text: str) -> int:
        return COUNTER.count(text)

    def count_messages(self, messages: Sequence[Message]) -> int:
        return COUNTER.count_messages(messages) + (400 if len(messages) > 2 else 0)


def test_a_greedy_counter_trims_to_the_newest_user_message_or_refuses() -> None:
    w = window(budget=500, counter=Greedy())
    chat(w, 10)
    w.add("user", "the newest question")
    built = w.build()
    assert [m.role for m in built.messages] == ["system", "user"]
    assert built.messages[-1].content == "the newest question"
    tight = window(budget=240, counter=Surcharge(), system="S" * 160)
    tight.add("user", "hi")
    with pytest.raises(ContextBudgetError, match="counts more than the sum"):
        tight.build()


class Surcharge(Greedy):
    def count_messages(self, messages: Sequence[Message]) -> int:
        return COUNTER.count_messages(messages) + (200 if len(messages) > 1 else 0)


def test_builds_of_item_lists_can_share_a_cache() -> None:
    from tether.context.retrieval import _by_log

    w = window(budget=600)
    chat(w, 20)
    owner = type("Window", (), {})()
    first = build(w.items(), budget=600, cache=owner)
    assert owner in _by_log
    assert build(w.items(), budget=600, cache=owner).messages == first.messages
    assert first.messages == build(w.log, budget=600).messages

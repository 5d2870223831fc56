"""Compaction: what folds, the summarizer's request, validation, the atomic swap, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.context.helpers import assert_valid, chat, tool_turn, window
from tether.context import (
    CompactionRejected,
    ContextSettings,
    StaleCompaction,
    StructuredSummary,
    SummaryRequest,
    WindowCore,
    apply,
    extractive_summarizer,
    plan_compaction,
)
from tether.errors import LLMError


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def busy(budget: int = 2000, **kw: Any) -> WindowCore:
    w = window(budget=budget, summarizer=extractive_summarizer, **kw)
    w.pin("account", "Customer ACC-7781 on plan /plans/gold.json")
    w.add("user", "Our account is ACC-7781; never email before 9am.")
    w.add("assistant", "Understood, ACC-7781, no emails before 9am.")
    for t in range(12):
        w.add("user", f"Step {t}: check server srv-{t}.")
        tool_turn(w, f"c{t}", f"srv-{t} status: OK, load {t}0% " + "log line " * 60)
        w.add("assistant", f"srv-{t} is healthy.")
    return w


def test_below_the_soft_trigger_nothing_folds() -> None:
    w = window(budget=10000)
    chat(w, 5)
    assert plan_compaction(w.log, budget=w.budget, system=w.system) is None


def test_the_plan_folds_whole_units_and_keeps_the_newest_turns() -> None:
    w = busy()
    plan = plan_compaction(w.log, budget=w.budget, system=w.system)
    assert plan is not None
    items = {i.seq: i for i in w.items()}
    folded = {
        items[s].message.tool_call_id
        for s in plan.folded
        if items[s].message and items[s].message.role == "tool"
    }
    calls = {
        c.id for s in plan.folded for c in (items[s].message.tool_calls if items[s].message else [])
    }
    assert folded == calls  # every folded call goes with its result
    newest = max(items)
    assert newest not in plan.folded and all(items[s].kind != "pin" for s in plan.folded)
    assert plan.through_seq < newest and plan.previous is None
    system, user = plan.request.messages
    for section in (
        "Goal",
        "Constraints",
        "Progress",
        "Decisions",
        "Next steps",
        "Critical context",
    ):
        assert section in system.content
    assert "ACC-7781" in plan.required  # pinned and present in the folded turns
    assert f"#{plan.folded[0]} user: Our account is ACC-7781" in user.content
    again = plan_compaction(w.log, budget=w.budget, system=w.system)
    assert again is not None and again.key == plan.key  # idempotency key: same range, same key
    other = plan_compaction(w.log, budget=w.budget, system=w.system, model="local:smollm2-135m")
    assert other is not None and other.key != plan.key
    tighter = plan_compaction(
        w.log, budget=w.budget, system=w.system, settings=ContextSettings(min_saving=0.5)
    )
    assert tighter is not None and tighter.key != plan.key


def test_a_valid_summary_is_swapped_in() -> None:
    w = busy()
    before = w.build()
    n = len(w.items())
    done = run(w.acompact())
    assert done is not None and done.turns_folded > 0
    assert done.tokens_after < done.tokens_before
    summary = w.log.summary()
    assert summary is not None and summary.seq == done.summary_seq
    after = w.build()
    assert_valid(after)
    assert after.report.summarized_through == summary.through_seq
    assert after.report.full_tokens == done.tokens_after
    assert after.report.full_tokens < before.report.full_tokens
    assert "Customer ACC-7781 on plan /plans/gold.json" in after.messages[0].content
    assert summary.text and summary.text in after.messages[0].content
    assert len(w.items()) == n + 1  # nothing deleted: one summary record appended
    assert [i.kind for i in w.items()][-1] == "summary"


def test_the_second_summary_is_incremental() -> None:
    w = busy()
    run(w.acompact())
    first = w.log.summary()
    assert first is not None
    for t in range(12, 20):
        w.add("user", f"Step {t}: check server srv-{t}.")
        tool_turn(w, f"c{t}", "log line " * 80)
    plan = plan_compaction(w.log, budget=w.budget, system=w.system, force=True)
    assert plan is not None and plan.previous == first.seq
    assert f"Previous summary:\n{first.text}" in plan.request.messages[1].content
    assert plan.from_seq == first.from_seq and plan.through_seq > (first.through_seq or 0)


def shrink(plan_text: str) -> StructuredSummary:
    return StructuredSummary(goal=plan_text)


def test_a_summary_that_is_not_shorter_is_refused() -> None:
    w = busy()
    plan = plan_compaction(w.log, budget=w.budget, system=w.system)
    assert plan is not None
    n = len(w.items())
    long = " ".join(plan.request.lines) + " ACC-7781"
    with pytest.raises(CompactionRejected, match="not 30% shorter") as info:
        apply(w.log, plan, long)
    assert len(info.value.problems) == 1
    assert len(w.items()) == n and w.log.summary() is None


def test_a_summary_that_drops_a_protected_term_is_refused() -> None:
    w = busy()
    plan = plan_compaction(w.log, budget=w.budget, system=w.system)
    assert plan is not None
    with pytest.raises(CompactionRejected, match="drops protected terms: ACC-7781"):
        apply(w.log, plan, StructuredSummary(goal="Check the servers.", progress=["all healthy"]))
    assert w.log.summary() is None
    ok = apply(
        w.log, plan, StructuredSummary(goal="Check servers for ACC-7781.", progress=["all healthy"])
    )
    assert w.log.summary() is not None and ok.summary_seq == w.log.summary().seq  # type: ignore[union-attr]


def test_the_previous_summary_identifiers_carry_over() -> None:
    w = busy()
    plan = plan_compaction(w.log, budget=w.budget, system=w.system)
    assert plan is not None
    apply(w.log, plan, "Goal: servers for ACC-7781; ticket INC-5521 open.")
    for t in range(12, 24):
        w.add("user", f"Step {t}.")
        tool_turn(w, f"c{t}", "log line " * 80)
    second = plan_compaction(w.log, budget=w.budget, system=w.system, force=True)
    assert second is not None and "INC-5521" in second.required
    with pytest.raises(CompactionRejected, match="INC-5521"):
        apply(w.log, second, "Goal: servers for ACC-7781.")


@pytest.mark.parametrize(
    "answer",
    ["", "   ", "Error generating summary: 429 Too Many Requests", "I'm sorry, I cannot help."],
)
def test_error_text_is_never_a_summary(answer: str) -> None:
    w = busy()
    plan = plan_compaction(w.log, budget=w.budget, system=w.system)
    assert plan is not None
    with pytest.raises(CompactionRejected):
        apply(w.log, plan, answer + " ACC-7781" if answer.strip() else answer)
    assert w.log.summary() is None


async def failing(request: SummaryRequest) -> StructuredSummary:
    raise LLMError("provider overloaded (529)")


def test_a_failed_summarizer_changes_nothing() -> None:
    w = busy()
    w.summarizer = failing
    n = len(w.items())
    with pytest.raises(LLMError, match="overloaded"):
        run(w.acompact())
    assert len(w.items()) == n and w.log.summary() is None
    built = run(w.abuild())  # the hard trigger is reached: abuild tries, fails, still fits
    assert built.report.trigger == "hard" and not built.report.compacted
    assert built.report.compaction_error == "LLMError: provider overloaded (529)"
    assert_valid(built)
    assert all("overloaded" not in m.content and "Error" not in m.content for m in built.messages)
    assert w.log.summary() is None


def test_a_stale_plan_is_refused() -> None:
    w = busy()
    first = plan_compaction(w.log, budget=w.budget, system=w.system)
    second = plan_compaction(w.log, budget=w.budget, system=w.system)
    assert first is not None and second is not None
    apply(w.log, first, "Goal: ACC-7781 servers.")
    n = len(w.items())
    replay = apply(w.log, second, "Goal: ACC-7781 servers.")  # the same key: the same summary
    assert replay.summary_seq == w.log.summary().seq and len(w.items()) == n  # type: ignore[union-attr]
    for t in range(12, 30):
        w.add("user", f"Step {t}.")
        tool_turn(w, f"c{t}", "log line " * 80)
    late = plan_compaction(w.log, budget=w.budget, system=w.system, force=True)
    newer = plan_compaction(w.log, budget=w.budget, system=w.system, force=True)
    assert late is not None and newer is not None
    apply(w.log, newer, "Goal: ACC-7781 servers, later.")
    late_plan = late.model_copy(update={"key": late.key + "-other"})
    with pytest.raises(StaleCompaction, match="plan the compaction again"):
        apply(w.log, late_plan, "Goal: ACC-7781 servers, stale.")


def test_hysteresis_no_recompaction_until_the_trigger_again() -> None:
    w = busy()
    assert run(w.acompact()) is not None
    settings = w.settings
    assert plan_compaction(w.log, budget=w.budget, system=w.system, settings=settings) is None
    grew = 0
    while plan_compaction(w.log, budget=w.budget, system=w.system) is None:
        w.add("user", f"more work {grew} " + "pad " * 30)
        w.add("assistant", "ok " * 30)
        grew += 1
        assert grew < 200
    assert w.build().report.full_tokens >= settings.soft_trigger * w.budget
    assert grew > 3


def test_abuild_compacts_at_the_hard_trigger() -> None:
    w = busy()
    assert w.build().report.trigger == "hard"
    built = run(w.abuild())
    assert built.report.compacted and built.report.summarized_through is not None
    assert built.report.trigger == "none"
    assert_valid(built)


def test_an_agent_turn_keeps_its_instruction_through_compaction() -> None:
    w = window(budget=1500, summarizer=extractive_summarizer)
    w.add("user", "TASK T-88: rotate keys in /srv/keys; never touch prod.")
    for i in range(30):
        tool_turn(w, f"s{i}", f"step {i}: " + "ok " * 80)
    done = run(w.acompact())
    assert done is not None
    summary = w.log.summary()
    assert summary is not None and len(summary.kept) == 1
    built = w.build()
    assert_valid(built)
    assert built.messages[1].content == "TASK T-88: rotate keys in /srv/keys; never touch prod."
    for _ in range(3):  # again and again: the instruction stays verbatim
        for i in range(30):
            tool_turn(w, f"r{_}-{i}", "ok " * 80)
        run(w.acompact())
        assert w.build().messages[1].content.startswith("TASK T-88")


def test_the_summarizer_input_is_bounded() -> None:
    w = busy(settings=ContextSettings(summarizer_input_tokens=400))
    plan = plan_compaction(w.log, budget=w.budget, system=w.system, settings=w.settings)
    assert plan is not None
    assert w.counter.count(plan.request.messages[1].content) < 700
    done = run(w.acompact())
    assert done is not None  # a first part folds; the rest folds on the next compaction
    assert run(w.acompact()) is not None


def test_repeated_compactions_keep_pins_pairs_and_budget() -> None:
    w = window(budget=1200, summarizer=extractive_summarizer)
    w.pin("id", "order ORD-99120 ships to /addr/berlin")
    for round_ in range(10):
        for t in range(6):
            w.add("user", f"round {round_} question {t} " + "q " * 20)
            tool_turn(w, f"c{round_}-{t}", "r " * 150)
            w.add("assistant", "a " * 20)
        built = run(w.abuild())
        assert_valid(built)
        assert "order ORD-99120 ships to /addr/berlin" in built.messages[0].content
    assert sum(1 for i in w.items() if i.kind == "summary") >= 3

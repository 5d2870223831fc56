"""Retention on both backends: each kind pruned with what depends on it kept consistent,
dry runs that change nothing, and a prune racing live workers losing nothing live."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

import tether
from tether import evals
from tether.evals.records import EXPERIMENT_FN, experiment_run_id, read_record
from tether.store.base import NewRun
from tether.store.retention import uuid_time
from tether.store.sql import SQLStore

DAY = 86400.0


def _sql(th: tether.Harness) -> SQLStore:
    store = th.store
    assert isinstance(store, SQLStore)
    return store


def count(th: tether.Harness, sql: str, *params: Any) -> int:
    return int(_sql(th).read(sql, params)[0][0])


def test_runs_go_with_their_steps_attempts_cancel_waits_and_trace(vth: tether.Harness) -> None:
    @vth.function(cancel_on=[tether.cancel_on("order.cancelled", match="data.id")])
    def flaky(ctx: tether.SyncContext) -> int:
        tries = {"n": 0}

        def once() -> int:
            tries["n"] += 1
            if ctx.attempt == 0:
                raise RuntimeError("first attempt fails")
            return 1

        return int(ctx.step.options(retries=tether.Retry(initial=0.01)).run("one", once))

    done = vth.run(flaky, {"id": "o1"})
    assert done == 1
    [old] = vth.list_runs()
    live = vth.enqueue(flaky, {"id": "o2"})  # queued: live, kept whatever its age
    vth.store.kv_set("otel.trace:" + old.id, "trace")
    assert count(vth, "SELECT count(*) FROM attempts WHERE run_id=?", old.id) >= 1
    vth.clock.advance(40 * DAY)  # type: ignore[attr-defined]

    dry = vth.prune(older_than="30d", dry_run=True)
    assert dry["runs"] == 1 and dry["steps"] == 1 and dry.bytes["runs"] > 0 and dry.dry_run
    assert count(vth, "SELECT count(*) FROM runs") == 2  # a dry run changes nothing

    counts = vth.prune(older_than="30d")
    assert (counts["runs"], counts["steps"]) == (dry["runs"], dry["steps"])
    assert counts.bytes["runs"] == dry.bytes["runs"]
    assert counts.longest_batch_s < 0.5 and counts.batches >= 1
    for table in ("steps", "attempts", "cancel_waits"):
        assert count(vth, f"SELECT count(*) FROM {table} WHERE run_id=?", old.id) == 0
    assert vth.store.kv_get("otel.trace:" + old.id) is None
    assert [r.id for r in vth.list_runs()] == [live.run_id]
    assert count(vth, "SELECT count(*) FROM cancel_waits WHERE run_id=?", live.run_id) == 1


def test_events_stay_while_a_run_they_triggered_is_live(vth: tether.Harness) -> None:
    @vth.function(trigger=tether.on_event("order.placed"))
    def waits(ctx: tether.SyncContext) -> Any:
        return ctx.step.wait_for_event("paid", event="order.paid", match="data.id", timeout=None)

    @vth.function(trigger=tether.on_event("note"))
    def quick(ctx: tether.SyncContext) -> int:
        return 1

    [placed] = vth.send(tether.Event("order.placed", {"id": "o1"}))
    [note] = vth.send(tether.Event("note", {}))
    [orphan] = vth.send(tether.Event("nobody.listens", {}))
    with vth.worker():
        deadline = time.monotonic() + 20
        while {r.status for r in vth.list_runs()} != {"waiting", "completed"}:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    vth.clock.advance(40 * DAY)  # type: ignore[attr-defined]
    counts = vth.prune(older_than="30d")
    assert counts["events"] == 2 and counts["runs"] == 1
    left = [r[0] for r in _sql(vth).read("SELECT id FROM events")]
    assert left == [placed] and note not in left and orphan not in left
    # the run still resumes on its event
    [paid] = vth.send(tether.Event("order.paid", {"id": "o1"}))
    with vth.worker():
        deadline = time.monotonic() + 20
        while vth.list_runs(function_id="waits")[0].status != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    # its trigger goes once the run ended; ids seen in the last 24 hours stay whatever
    # older_than says (deduplication)
    assert vth.prune(older_than="0s")["events"] == 1
    assert [r[0] for r in _sql(vth).read("SELECT id FROM events")] == [paid]


def _experiment(th: tether.Harness, name: str, task: Any) -> None:
    evals.run(
        th,
        "triage",
        task=task,
        dataset=[{"input": "a", "expected": "A", "id": "a"}, {"input": "b", "expected": "B"}],
        scorers=[evals.exact()],
        experiment=name,
    )


def test_experiments_keep_the_latest_baselines_and_those_in_progress(vth: tether.Harness) -> None:
    @vth.function()
    def upper(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("up", lambda: str(ctx.event.data).upper()))

    for name in ("v1", "v2", "v3", "v4"):
        _experiment(vth, name, upper)
        vth.clock.advance(60)  # type: ignore[attr-defined]
    evals.compare(vth, "v3", baseline="v1")  # v1 is a baseline from now on
    # an experiment interrupted halfway: its run waits, one case finished
    store = _sql(vth)
    rid = experiment_run_id("half")
    now = vth.clock.now()
    store.create_run(
        NewRun(
            rid,
            EXPERIMENT_FN,
            "tether/function.invoked",
            '{"evaluation": "triage"}',
            None,
            now,
            now,
        ),
        now,
    )
    case = NewRun(rid + "-0123456789ab-0", "tether.eval.case", "e", "{}", None, now, now)
    store.create_run(case, now)
    [claim] = store.claim("w", 1, ["tether.eval.case"], now, 30.0)
    store.finish(case.id, claim.token, "completed", '{"status": "ok"}', None, now)
    task_runs = count(vth, "SELECT count(*) FROM runs WHERE id LIKE 'eval-%-task'")
    assert task_runs == 8  # 4 experiments x 2 cases, each case's task a durable run
    vth.clock.advance(40 * DAY)  # type: ignore[attr-defined]

    dry = vth.prune(older_than="30d", keep_experiments=2, dry_run=True)
    counts = vth.prune(older_than="30d", keep_experiments=2)
    assert counts["experiments"] == dry["experiments"] == 1  # v2 only
    assert counts["experiment_runs"] == dry["experiment_runs"] == 4  # its 2 cases, 2 tasks
    assert counts["runs"] == 0  # task runs belong to their experiments, not to "runs"
    names = sorted(e.name for e in evals.list_experiments(vth) if e.name)
    assert names == ["v1", "v3", "v4"]
    assert store.run_status(rid) is not None and store.run_status(case.id) is not None
    # a kept experiment still opens its cases' runs
    for name in names:
        result = evals.compare(vth, name, baseline="v1")
        assert result.scorers["exact"].cases == 2
    for rec_id in [
        r[0] for r in store.read("SELECT id FROM runs WHERE function_id=?", ("tether.eval.case",))
    ]:
        record = read_record(store, rec_id)
        if record is not None and record.get("run_id") and rec_id != case.id:
            assert vth.get_run(record["run_id"]).status == "completed"
    assert (
        count(vth, "SELECT count(*) FROM runs WHERE id LIKE ?", experiment_run_id("v2") + "%") == 0
    )


def test_an_interrupted_prune_of_an_experiment_is_finished_by_the_next(vth: tether.Harness) -> None:
    @vth.function()
    def echo(ctx: tether.SyncContext) -> Any:
        return ctx.event.data

    _experiment(vth, "old", echo)
    vth.clock.advance(40 * DAY)  # type: ignore[attr-defined]
    store = _sql(vth)
    # what a prune killed after its first batch leaves: the experiment's own run is gone
    store.write(lambda tx: tx.execute("DELETE FROM runs WHERE id=?", (experiment_run_id("old"),)))
    left = count(vth, "SELECT count(*) FROM runs WHERE id LIKE 'eval-%'")
    assert left == 4
    counts = vth.prune(older_than="30d", keep_experiments=0)
    assert counts["experiment_runs"] == 4 and counts["runs"] == 0
    assert count(vth, "SELECT count(*) FROM runs") == 0


def test_online_scores_are_their_own_kind(vth: tether.Harness) -> None:
    @vth.function(id="tether.eval.online.reply")
    def score(ctx: tether.SyncContext) -> dict[str, float]:
        return {"exact": 1.0}

    @vth.function()
    def reply(ctx: tether.SyncContext) -> str:
        return "hi"

    vth.run(score)
    vth.run(reply)
    vth.clock.advance(40 * DAY)  # type: ignore[attr-defined]
    only = vth.prune(older_than={"online_scores": "30d"})
    assert only["online_scores"] == 1 and "runs" not in only
    assert [r.function_id for r in vth.list_runs()] == ["reply"]


def test_breaker_and_hold_records_go_once_expired(vth: tether.Harness) -> None:
    breaker = vth.circuit_breaker
    breaker.hold("openai:old", 30)
    for _ in range(5):
        breaker.record_failure("openai:broken")
    assert breaker.state("openai:broken") == "open"
    vth.clock.advance(40 * DAY)  # type: ignore[attr-defined]
    breaker.hold("openai:busy", 30)  # a hold now: not expired
    counts = vth.prune(older_than="30d")
    assert counts["breakers"] == 2
    keys = {
        r[0] for r in _sql(vth).read("SELECT key FROM kv WHERE key LIKE 'tether.llm.circuit:%'")
    }
    assert keys == {"tether.llm.circuit:openai:busy"}
    assert breaker.state("openai:broken") == "closed" and breaker.status("openai:busy").hold_until


def test_langgraph_checkpoints_keep_each_threads_newest(th: tether.Harness) -> None:
    pytest.importorskip("langgraph")
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    from tether.integrations.langgraph import TetherSaver

    saver = TetherSaver(th)
    store = _sql(th)

    def put(thread: str, age_days: float, ns: str = "") -> str:
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=1))
        cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
        saver.put(cfg, cp, {"step": 1}, {})  # type: ignore[arg-type]
        saver.put_writes(
            {"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": cp["id"]}},
            [("channel", "value")],
            "task-1",
        )
        store.write(
            lambda tx: tx.execute(
                "UPDATE langgraph_checkpoints SET created_at=? WHERE checkpoint_id=?",
                (time.time() - age_days * DAY, cp["id"]),
            )
        )
        return cp["id"]

    live = [put("live", 50), put("live", 40), put("live", 1)]
    sub_old = put("live", 45, ns="child")  # the newest of its namespace: kept
    gone = [put("idle", 50), put("idle", 35)]
    undated = put("undated", 0)
    store.write(
        lambda tx: tx.execute(
            "UPDATE langgraph_checkpoints SET created_at=NULL WHERE checkpoint_id=?", (undated,)
        )
    )
    assert abs((uuid_time(undated) or 0) - time.time()) < 60
    counts = th.prune(older_than="30d")
    assert counts["langgraph"] == 4  # two of "live", the whole of "idle"
    kept = {r[0] for r in store.read("SELECT checkpoint_id FROM langgraph_checkpoints")}
    assert kept == {live[2], sub_old, undated}
    writes = {r[0] for r in store.read("SELECT checkpoint_id FROM langgraph_writes")}
    assert writes == kept and not set(gone) & writes
    latest = saver.get_tuple({"configurable": {"thread_id": "live", "checkpoint_ns": ""}})
    assert latest is not None and latest.config["configurable"]["checkpoint_id"] == live[2]


def test_a_prune_racing_live_workers_loses_nothing_live(th: tether.Harness) -> None:
    """Runs sleep and wait for events while another thread prunes everything finished, over
    and over (quick runs finish and go meanwhile): every run ends, each step ran once, and
    each run was pruned once, after it ended."""
    executed: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def mark(run_id: str, step: str) -> str:
        with lock:
            executed[(run_id, step)] += 1
        return step

    @th.function(trigger=tether.on_event("job"))
    def job(ctx: tether.SyncContext) -> str:
        ctx.step.run("a", mark, ctx.run_id, "a")
        ctx.step.sleep("nap", 0.3)
        ctx.step.run("b", mark, ctx.run_id, "b")
        ctx.step.wait_for_event("go", event="go", match="data.n", timeout=30)
        return str(ctx.step.run("c", mark, ctx.run_id, "c"))

    @th.function(trigger=tether.on_event("quick"))
    def quick(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("q", mark, ctx.run_id, "q"))

    stop = threading.Event()
    pruned: list[int] = []

    def pruner() -> None:
        while not stop.is_set():
            pruned.append(th.prune(older_than="0s")["runs"])

    total = 30
    with th.worker(concurrency=8):
        thread = threading.Thread(target=pruner)
        thread.start()
        try:
            for n in range(total):
                th.send([tether.Event("job", {"n": n}), tether.Event("quick", {"n": n})])
            deadline = time.monotonic() + 40
            while sum(1 for (_, s) in executed if s == "b") < total:
                assert time.monotonic() < deadline, "runs stopped making progress"
                time.sleep(0.05)
            th.send([tether.Event("go", {"n": n}) for n in range(total)])
            while sum(1 for (_, s) in executed if s == "c") < total:
                assert time.monotonic() < deadline, "a waiting run lost its wake-up"
                time.sleep(0.05)
            while sum(pruned) < 2 * total:  # every run ends, then goes
                assert time.monotonic() < deadline, f"pruned {sum(pruned)} of {2 * total}"
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join()
    assert len({rid for rid, _ in executed}) == 2 * total
    assert set(executed.values()) == {1}, "a step ran twice: its checkpoint was lost"
    assert sum(pruned) == 2 * total and th.list_runs() == []


def test_superseded_memory_versions_go_and_current_ones_stay(th: tether.Harness) -> None:
    from tether.store.memories import NewMemory

    store = _sql(th)
    old = time.time() - 40 * DAY

    def new(mid: str, text: str, at: float) -> NewMemory:
        return NewMemory(mid, "user:1", text, None, (), at)

    store.ensure_subject("user:1")
    store.memory_add(new("m1", "likes tea", old))
    store.memory_update("m1", new("m2", "likes green tea", old + 1))  # m1 superseded 40 days ago
    store.memory_update("m2", new("m3", "likes oolong", time.time()))  # m2 superseded now
    store.memory_add(new("k1", "lives in Lyon", old))  # current, however old
    dry = th.prune(older_than="30d", dry_run=True)
    counts = th.prune(older_than="30d")
    assert counts["memory"] == dry["memory"] == 1 and counts.bytes["memory"] > 0
    ids = {r[0] for r in store.read("SELECT id FROM memories")}
    assert ids == {"m2", "m3", "k1"}
    assert {m.id for m in store.memory_list("user:1")} == {"m3", "k1"}
    assert store.memory_delete("user:1", "m3", None, time.time()) == 2  # the chain, m2 incl.


def test_windows_untouched_are_cleared_and_summarized_turns_go_from_those_in_use(
    th: tether.Harness,
) -> None:
    from tests.context.conformance import call, result, summary, user
    from tether.context import pin_item
    from tether.store.retention import set_window_ttl

    store = _sql(th)
    old = time.time() - 40 * DAY
    # in use: 6 old items, a summary through #4 (a tool call at #4 answered at #5), a new turn
    store.window_append("live", [user("hi"), pin_item("name", "Ada"), user("a")], old)
    store.window_append("live", [call("c1"), result("c1"), user("b")], old)
    store.window_append("live", [summary(5, None)], old)  # #7 stands for #1..#5
    store.window_append("live", [user("new")], time.time())  # #8
    # untouched for 40 days: goes whole; a window with ttl=90d stays
    store.window_append("idle", [user("x"), user("y")], old)
    store.window_append("kept", [user("z")], old)
    set_window_ttl(store, "kept", "90d")
    assert set_window_ttl(store, "missing", "1d") is False
    th.context("opened", budget=1000, ttl="90d")  # th.context(ttl=) sets it on open
    assert store.read("SELECT ttl FROM windows WHERE key='opened'")[0][0] == 90 * DAY
    with pytest.raises(tether.ConfigurationError, match="above zero"):
        th.context("opened", budget=1000, ttl=0)
    th.context("opened", budget=1000).add("user", "hello")  # reopened and written: kept
    assert store.read("SELECT ttl FROM windows WHERE key='opened'")[0][0] == 90 * DAY

    dry = th.prune(older_than="30d", dry_run=True)
    counts = th.prune(older_than="30d")
    assert counts["windows"] == dry["windows"] == 6  # #1, #3, #4, #5 of live; both of idle
    assert counts["windows_cleared"] == dry["windows_cleared"] == 1
    live = [(i.seq, i.kind) for i in store.window_read("live")[1]]
    assert live == [(2, "pin"), (6, "message"), (7, "summary"), (8, "message")]
    summary_now = store.window_summary("live")
    assert summary_now is not None and summary_now.seq == 7  # still in force, still valid
    generation, items = store.window_read("idle")
    assert items == [] and generation == 1  # cleared: a process holding it sees it is gone
    assert [i.seq for i in store.window_read("kept")[1]] == [1]
    store.window_append("idle", [user("again")], time.time())  # the key works again
    assert [i.seq for i in store.window_read("idle")[1]] == [3]

"""The dashboard's store reads on both backends: filtered, paged runs; stats; events."""

from __future__ import annotations

import tether
from tether.store.queries import RunQuery


def test_query_runs_stats_and_events(th: tether.Harness) -> None:
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("once")
        return 1

    @th.function(trigger=tether.on_event("ticket"), retries=tether.Retry(3, initial=0.001))
    def work(ctx: tether.SyncContext) -> int:
        return int(ctx.step.run("a", flaky))

    @th.function()
    def idle(ctx: tether.SyncContext) -> None:
        return None

    th.send([tether.Event("ticket", {"n": i, "tag": f"100%_{i}"}) for i in range(4)])
    for run in th.list_runs("work"):
        th.run(work, run_id=run.id)
    th.run(idle)
    store = th.store
    assert len(store.query_runs(RunQuery(function_id="work"))) == 4
    assert len(store.query_runs(RunQuery(status="completed"))) == 5
    assert [r.function_id for r in store.query_runs(RunQuery(text="100%_2"))] == ["work"]
    assert store.query_runs(RunQuery(text="100%_9")) == []
    assert store.query_runs(RunQuery(since=4102444800.0)) == []  # 2100
    first = store.query_runs(RunQuery(function_id="work", limit=3))
    rest = store.query_runs(RunQuery(function_id="work", limit=3, before=first[-1].id))
    assert len(first) == 3 and len(rest) == 1
    assert {r.id for r in first} | {r.id for r in rest} == {r.id for r in th.list_runs("work")}

    rows, retries = store.run_stats(0.0, 1000)
    assert sorted(fid for fid, _, _ in rows) == ["idle"] + ["work"] * 4
    assert all(status == "completed" and d is not None and d >= 0 for _, status, d in rows)
    assert retries == {"work": 1}

    events = store.list_events(2)
    assert len(events) == 2 and events[0][1] >= events[1][1]
    older = store.list_events(10, before=events[-1][0].id)
    assert len(older) == 2 and all(e.name == "ticket" for e, _, _ in older)
    assert store.list_events(10, name="nope") == []
    triggered = store.query_runs(RunQuery(event_id=events[0][0].id))
    assert len(triggered) == 1 and triggered[0].function_id == "work"

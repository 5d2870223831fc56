"""The shared SQL store on both backends: cancelling against a racing claim, pruning,
and the functions table keeping each function's whole description."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tether.store import Store, open_store
from tether.store.base import Fenced, FlowPlan, NewRun, StepWrite


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def _run(rid: str, flow: FlowPlan | None = None) -> NewRun:
    return NewRun(rid, "f", "e", '{"n": 1}', None, 0.0, 0.0, flow=flow)


def _step(step_id: str) -> StepWrite:
    return StepWrite(step_id, 0, "run", "completed", 5.0, 5.0, output="1")


def _count(store: Store, sql: str) -> int:
    read: Callable[[str], list[Any]] = getattr(store, "read", None) or store._read  # type: ignore[attr-defined]
    return int(read(sql)[0][0])


def _between_write_transactions(store: Store, act: Callable[[], None]) -> Callable[[], None]:
    """Make ``act`` run when ``store`` begins its second write transaction from now on
    (between two transactions of one call), like another process would. SQLite only:
    the write connection's statement trace says when a transaction begins."""
    conn = getattr(store, "_writer", None) or store._write  # type: ignore[attr-defined]
    begins = [0]

    def trace(sql: str) -> None:
        if sql.startswith("BEGIN"):
            begins[0] += 1
            if begins[0] == 2:
                act()

    conn.set_trace_callback(trace)
    return lambda: conn.set_trace_callback(None)


def test_request_cancel_leaves_no_window_for_a_claim(store: Store, store_url: str) -> None:
    """Defect: SQLite checked the status and cancelled in two transactions, so a worker
    claiming in between kept checkpointing into a run already marked cancelled."""
    other = open_store(store_url)  # another worker process's connections
    try:
        store.create_run(_run("r1"), now=1.0)
        claims = []

        def claim() -> None:
            if not claims:
                claims.extend(other.claim("w2", 1, ["f"], 2.0, 30.0))

        undo = None
        if store_url.startswith("sqlite"):
            undo = _between_write_transactions(store, claim)
        try:
            status = store.request_cancel("r1", 3.0)
        finally:
            if undo is not None:
                undo()
        claim()  # the other worker tries now if it did not get a chance in between
        state = store.run_status("r1")
        assert state is not None
        if claims:  # it claimed first: the run is executing, flagged for its worker
            try:
                asked = other.save_step("r1", claims[0].token, _step("s1"))
            except Fenced:
                asked = True
            assert asked, f"a run {state[0]} kept checkpointing: its worker was never told"
            assert status == "running" and state[0] == "running"
        else:  # the cancel came first: the run ended and no worker may take it
            assert status == "cancelled" and state[0] == "cancelled"
            assert other.claim("w2", 1, ["f"], 4.0, 30.0) == []
    finally:
        other.close()


def test_prune_deletes_the_cancel_registrations_of_pruned_runs(store: Store) -> None:
    """Defect: SQLite's prune left ``cancel_waits`` rows behind (PostgreSQL deleted them)."""
    plan = FlowPlan(cancel_waits=[("order.cancelled", "data.id", '"o1"', None)])
    rid, created, _ = store.create_run(_run("r1", plan), now=1.0)
    assert created
    (claimed,) = store.claim("w", 1, ["f"], 2.0, 30.0)
    assert _count(store, "SELECT count(*) FROM cancel_waits") == 1
    assert store.finish(rid, claimed.token, "completed", "1", None, 3.0)
    counts = store.prune(before=10.0, events_before=10.0)
    assert counts["runs"] == 1
    assert _count(store, "SELECT count(*) FROM cancel_waits") == 0
    assert _count(store, "SELECT count(*) FROM runs") == 0


def test_functions_table_keeps_the_whole_description(store: Store) -> None:
    described = {
        "id": "reply",
        "triggers": [{"event": "msg", "where": "event.data.n > 1"}],
        "idempotency": "event.data.id",
        "version": "abc123",
        "timeout": 12.5,
        "flow": {"concurrency": [{"limit": 1, "key": "event.data.chat"}], "priority": None},
        "subject": "event.data.user",
        "nested": {"list": [1, 2.5, "x", True, None], "big": 2**53 + 1},
    }
    plain = {"id": "old", "triggers": [], "idempotency": None, "version": None}
    store.register_functions([described, plain], now=1.0)
    assert sorted(store.registered_functions(), key=lambda r: r["id"]) == [plain, described]
    store.register_functions([{**described, "timeout": None, "version": "def"}], now=2.0)
    again = {r["id"]: r for r in store.registered_functions()}
    assert again["reply"] == {**described, "timeout": None, "version": "def"}


def test_rows_registered_before_descriptions_were_kept_still_read(store: Store) -> None:
    write: Callable[..., Any] = store.write  # type: ignore[attr-defined]
    write(
        lambda tx: tx.execute(
            "INSERT INTO functions (id, triggers, idempotency, version, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ("legacy", '[{"event": "x", "where": null}]', "event.data.k", "v1", 1.0),
        )
    )
    assert store.registered_functions() == [
        {
            "id": "legacy",
            "triggers": [{"event": "x", "where": None}],
            "idempotency": "event.data.k",
            "version": "v1",
        }
    ]


def test_a_description_that_is_not_json_is_refused(store: Store) -> None:
    from tether.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"function 'bad'.*plain JSON"):
        store.register_functions([{"id": "bad", "triggers": [], "key": object()}], now=1.0)
    assert store.registered_functions() == []


def test_a_run_claimed_again_loads_the_steps_another_worker_wrote(
    store: Store, store_url: str
) -> None:
    """A run this process created already claimed skips its first load (it has no steps),
    but once another worker took it over and checkpointed, claiming it back loads them."""
    rid, _, first = store.create_run(_run("r1"), now=1.0, owner="w1", ttl=5.0)
    assert first is not None  # claimed at creation; this process never executed it
    other = open_store(store_url)
    try:
        (takeover,) = other.claim("w2", 1, ["f"], 10.0, 5.0)  # the lease ran out
        assert not other.save_step(rid, takeover.token, _step("s1"))
        other.release(rid, takeover.token, 11.0)
    finally:
        other.close()
    (again,) = store.claim("w1", 1, ["f"], 12.0, 5.0)
    assert again.token > takeover.token
    assert list(store.load_steps(rid)) == ["s1"]


def test_a_batch_of_checkpoints_reports_each_one_on_its_own(store: Store) -> None:
    """One batch (one transaction on SQLite, one pipeline on PostgreSQL) with a checkpoint
    that holds its lease, one of a run asked to cancel and one whose lease moved: each gets
    its own answer, and only the fenced one writes nothing."""
    claims = {}
    for rid in ("live", "cancel", "moved"):
        _, _, claim = store.create_run(_run(rid), now=1.0, owner="w1", ttl=60.0)
        assert claim is not None
        claims[rid] = claim
    store.request_cancel("cancel", 2.0)
    results = store.save_steps(
        [
            ("live", claims["live"].token, _step("s1")),
            ("cancel", claims["cancel"].token, _step("s1")),
            ("moved", claims["moved"].token + 1, _step("s1")),
        ]
    )
    assert results[:2] == [False, True]
    assert isinstance(results[2], Fenced)
    written = "SELECT count(*) FROM steps WHERE run_id='{}'"
    assert [_count(store, written.format(r)) for r in ("live", "cancel", "moved")] == [1, 1, 0]

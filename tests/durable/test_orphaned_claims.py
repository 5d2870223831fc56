"""A claim whose reply never reached the worker (a connection dropped after the commit)
leaves a run leased to this very process; once the lease expires the process takes it
back instead of skipping its own runs forever."""

from __future__ import annotations

import time

import tether


def test_a_worker_reclaims_its_own_orphaned_claim(th: tether.Harness) -> None:
    @th.function()
    def job(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("work", lambda: "done"))

    handle = th.enqueue(job)
    engine = th.engine
    orphan = th.store.claim(engine.owner, 1, ["job"], th.clock.now(), 0.3)
    assert [c.run_id for c in orphan] == [handle.run_id]  # claimed, then "lost"
    started = time.monotonic()
    with th.worker():
        assert handle.result(timeout=20) == "done"
    assert time.monotonic() - started < 10

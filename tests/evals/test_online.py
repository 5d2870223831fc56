"""Online scoring: a deterministic share of a function's completed runs is scored by
durable runs, once across watches, with ``gen_ai.evaluation.result`` events (in-memory
OpenTelemetry exporter) under the evaluated run's span when its trace is stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tether
from tether import ConfigurationError, evals
from tether.evals.online import sampled
from tether.observe import TRACE_KV_PREFIX, instrument


@pytest.fixture
def exporter(th: tether.Harness) -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrument(th, tracer_provider=provider)
    yield spans
    provider.shutdown()


def evaluation_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("evaluation ")]


def test_a_deterministic_share_of_completed_runs_is_scored_once(
    th: tether.Harness, exporter: InMemorySpanExporter
) -> None:
    @th.function()
    async def reply(ctx: tether.Context) -> str:
        if ctx.event.data.get("fail"):
            raise RuntimeError("broken")
        if ctx.event.data.get("pause"):
            await ctx.step.sleep("pause", 0.05)  # the run suspends: its trace context is stored
        return f"an answer to {ctx.event.data['q']}"

    th.run(reply, {"q": "before"}, run_id="before")  # created before the watch: not scored
    watch = evals.online(
        th, function=reply, scorers=[evals.contains("answer"), evals.exact()], sample=0.5, poll=0.05
    )
    ids = [f"run-{i}" for i in range(16)]
    chosen = {rid for rid in ids if sampled("reply", rid, 0.5)}
    assert 0 < len(chosen) < len(ids)
    paused = sorted(chosen)[0]
    for rid in ids:
        th.run(reply, {"q": rid, "pause": rid == paused}, run_id=rid)
    with pytest.raises(tether.RunFailed):
        th.run(reply, {"q": "x", "fail": True}, run_id="failed-run")
    watch.flush()
    scores = evals.online_scores(th, reply)
    assert {s.run_id for s in scores} == chosen  # failed and earlier runs are not scored
    for s in scores:
        assert s.scores["contains"].passed and s.scores["contains"].value == 1.0
        assert s.scores["exact"].unscored  # production runs have no expected value
        assert th.get_run(s.score_run_id).function_id == "tether.eval.online.reply"
    watch.stop()

    # another watch (a restart, another process) decides the same runs and creates nothing
    again = evals.online(
        th,
        function=reply,
        scorers=[evals.contains("answer"), evals.exact()],
        sample=0.5,
        since="1h",
        poll=0.05,
    )
    again.flush()
    again.stop()
    assert again.created == 0 and len(evals.online_scores(th, reply)) == len(chosen)

    spans = evaluation_spans(exporter)
    assert len(spans) == len(chosen)
    events = [e for s in spans for e in s.events if e.name == "gen_ai.evaluation.result"]
    assert len(events) == 2 * len(chosen)
    passed = [e.attributes for e in events if e.attributes["gen_ai.evaluation.name"] == "contains"]
    assert all(a["gen_ai.evaluation.score.value"] == 1.0 for a in passed)
    assert all(a["gen_ai.evaluation.score.label"] == "pass" for a in passed)
    unscored = [e.attributes for e in events if e.attributes["gen_ai.evaluation.name"] == "exact"]
    assert all(a["gen_ai.evaluation.score.label"] == "unscored" for a in unscored)
    assert all("gen_ai.evaluation.score.value" not in a for a in unscored)
    # the paused run's trace was stored: its evaluation is a child of that run's span
    stored = th.store.kv_get(TRACE_KV_PREFIX + paused)
    assert stored is not None
    trace_id, root_span = stored.split("-")[:2]
    [span] = [s for s in spans if s.attributes["tether.run.id"] == paused]
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == root_span


def test_runs_still_in_flight_are_scored_when_they_complete(th: tether.Harness) -> None:
    @th.function()
    async def slow(ctx: tether.Context) -> str:
        await ctx.step.sleep("wait", 0.3)
        return "done"

    watch = evals.online(th, function=slow, scorers=[evals.contains("done")], sample=1.0, poll=0.05)
    with th.worker():
        handle = th.enqueue(slow)
        assert watch.flush() == 0  # seen while it sleeps: pending
        handle.result(timeout=10)
    watch.flush()
    watch.stop()
    [score] = evals.online_scores(th, slow)
    assert score.run_id == handle.run_id and score.scores["contains"].passed


def test_bad_online_arguments(th: tether.Harness) -> None:
    @th.function()
    def f(ctx: tether.SyncContext) -> int:
        return 1

    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        evals.online(th, function=f, scorers=[evals.exact()], sample=1.5)
    with pytest.raises(ConfigurationError, match="not a registered function"):
        evals.online(th, function=lambda ctx: 1, scorers=[evals.exact()])
    with pytest.raises(ConfigurationError, match="unknown scorer"):
        evals.online(th, function=f, scorers=["nope"])
    assert th.list_runs() == []


def test_experiment_cases_emit_evaluation_events(
    th: tether.Harness, exporter: InMemorySpanExporter
) -> None:
    cases = evals.Dataset([evals.Case("a", "A", id="a"), evals.Case("b", "B", id="b")])

    def broken(case: evals.Case, output: str) -> float:
        raise ValueError("cannot score")

    result = evals.run(th, "traced", task=str.upper, dataset=cases, scorers=["exact", broken])
    spans = evaluation_spans(exporter)
    assert sorted(s.attributes["tether.run.id"] for s in spans) == sorted(
        c.run_id for c in result.cases
    )
    for span in spans:
        by_name = {e.attributes["gen_ai.evaluation.name"]: e.attributes for e in span.events}
        assert by_name["exact"]["gen_ai.evaluation.score.label"] == "pass"
        assert by_name["broken"]["gen_ai.evaluation.score.label"] == "unscored"
        assert "ValueError: cannot score" in by_name["broken"]["gen_ai.evaluation.explanation"]
        assert span.parent is not None  # under the case run's span

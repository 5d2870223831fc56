"""Experiments as durable runs on a real SQLite store: data mapping, summaries, errors,
unscored results, lazy case results, experiment names and bad input."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

import pytest

import tether
from tether import ConfigurationError, evals
from tether.testing import FakeLLMServer

from .conftest import Reply, model


def dataset() -> evals.Dataset:
    return evals.Dataset(
        [
            evals.Case({"text": "please refund me"}, "billing", id="refund"),
            evals.Case({"text": "the app crashes"}, "bug", id="crash"),
            evals.Case({"text": "hello"}, "other", id="hello"),
        ]
    )


def classify(text: str) -> str:
    return "billing" if "refund" in text else "bug" if "crash" in text else "greeting"


def test_a_registered_task_gets_the_input_object_as_its_event_data(th: tether.Harness) -> None:
    seen: list[dict[str, Any]] = []

    @th.function()
    async def triage(ctx: tether.Context) -> str:
        seen.append(dict(ctx.event.data))
        return await ctx.step.run("label", classify, ctx.event.data["text"])

    result = evals.run(th, "triage", task=triage, dataset=dataset(), scorers=[evals.exact()])
    assert sorted(d["text"] for d in seen) == ["hello", "please refund me", "the app crashes"]
    summary = result.summary["exact"]
    assert (summary.mean, summary.pass_rate, summary.n, summary.unscored) == (2 / 3, 2 / 3, 3, 0)
    assert summary["mean"] == summary.mean  # also readable as a mapping
    first = result.cases[0]
    assert first.case.id == "refund" and first.output == "billing" and first.status == "ok"
    run = th.get_run(first.run_id)  # the task's own run: it opens into its trace
    assert run.function_id == "triage" and run.status == "completed"
    assert [s.id for s in run.steps] == ["label"] and first.latency_s is not None
    assert th.get_run(first.case_run_id).function_id == "tether.eval.case"


def test_other_inputs_arrive_wrapped_and_plain_callables_get_them_as_is(
    th: tether.Harness,
) -> None:
    @th.function()
    def echo(ctx: tether.SyncContext) -> Any:
        return ctx.event.data

    cases = evals.Dataset([evals.Case("text", id="s"), evals.Case([1, 2], id="l")])
    result = evals.run(th, "wrap", task=echo, dataset=cases, scorers=[evals.regex(".")])
    assert [c.output for c in result.cases] == [{"input": "text"}, {"input": [1, 2]}]
    got: list[Any] = []

    def plain(value: Any) -> Any:
        got.append(value)
        return value

    evals.run(th, "plain", task=plain, dataset=cases, scorers=[evals.regex(".")])
    assert got == ["text", [1, 2]]


def test_a_failed_task_scores_zero_and_an_erroring_scorer_leaves_it_unscored(
    th: tether.Harness,
) -> None:
    @th.function()
    async def answer(ctx: tether.Context) -> str:
        if "crash" in ctx.event.data["text"]:
            raise RuntimeError("model unavailable")
        return classify(ctx.event.data["text"])

    def fussy(case: evals.Case, output: Any) -> float:
        if case.id == "hello":
            raise ValueError("cannot judge greetings")
        return float("nan") if case.id == "refund" else 1.0

    result = evals.run(th, "errors", task=answer, dataset=dataset(), scorers=[evals.exact(), fussy])
    by_id = {c.case.id: c for c in result.cases}
    crash = by_id["crash"]
    assert crash.status == "error" and crash.error is not None
    assert crash.error["type"] == "RuntimeError" and "model unavailable" in crash.error["message"]
    assert all(s.value == 0.0 and s.passed is False for s in crash.scores.values())
    assert th.get_run(crash.run_id).status == "failed"  # the failing case opens into its run
    assert by_id["hello"].scores["fussy"].error == "ValueError: cannot judge greetings"
    assert by_id["refund"].scores["fussy"].unscored  # NaN: unscored, not a zero
    fussy_summary = result.summary["fussy"]
    # the failed task counts as a scored 0; the two others are unscored, never NaN
    assert (fussy_summary.n, fussy_summary.unscored, fussy_summary.mean) == (1, 2, 0.0)
    assert result.errors == 1 and result.summary["exact"].mean == pytest.approx(1 / 3)


def test_a_scorer_that_scores_nothing_has_no_mean_never_nan(th: tether.Harness) -> None:
    def never(case: evals.Case, output: Any) -> float:
        raise RuntimeError("no")

    result = evals.run(th, "none", task=classify, dataset=dataset(), scorers=[never])
    s = result.summary["never"]
    assert s.mean is None and s.pass_rate is None and s.n == 0 and s.unscored == 3


def test_stdev_is_over_the_per_repeat_means_and_flaky_cases_are_counted(
    th: tether.Harness,
) -> None:
    calls: list[int] = []

    def task(value: Any) -> int:
        calls.append(1)
        return len(calls)  # with concurrency 1: repeat 0 gives 1..3, repeat 1 gives 4..6

    def odd(case: evals.Case, output: Any) -> bool:
        return output % 2 == 1

    result = evals.run(
        th, "repeats", task=task, dataset=dataset(), scorers=[odd], repeat=2, concurrency=1
    )
    # repeat 0: outputs 1, 2, 3 -> mean 2/3; repeat 1: 4, 5, 6 -> mean 1/3
    s = result.summary["odd"]
    assert s.repeat_means == pytest.approx([2 / 3, 1 / 3])
    assert s.stdev == pytest.approx(statistics.stdev([2 / 3, 1 / 3]))
    assert s.mean == pytest.approx(0.5) and s.n == 6
    assert s.flaky == 3  # every case passed in one repeat and failed in the other
    assert len(result.cases) == 6
    assert [(c.case.id, c.repeat) for c in result.cases][:2] == [("refund", 0), ("refund", 1)]
    assert result.cases[-1].case.id == "hello" and result.cases[-1].repeat == 1
    with pytest.raises(IndexError):
        result.cases[6]


def test_the_same_code_on_the_same_data_returns_the_same_experiment(th: tether.Harness) -> None:
    calls: list[str] = []

    def task(value: dict[str, Any]) -> str:
        calls.append(value["text"])
        return classify(value["text"])

    first = evals.run(th, "same", task=task, dataset=dataset(), scorers=[evals.exact()])
    version, data_hash = first.experiment.split(":")[1:]
    assert first.experiment == f"same:{version}:{dataset().hash}" and data_hash == dataset().hash
    again = evals.run(th, "same", task=task, dataset=dataset(), scorers=[evals.exact()])
    assert again.experiment == first.experiment and len(calls) == 3  # nothing ran again
    assert again.summary["exact"] == first.summary["exact"]
    fresh = evals.run(th, "same", task=task, dataset=dataset(), scorers=[evals.exact()], fresh=True)
    assert fresh.experiment == f"{first.experiment}#2" and len(calls) == 6
    other = evals.Dataset([*dataset(), evals.Case({"text": "new"}, "other", id="new")])
    grown = evals.run(th, "same", task=task, dataset=other, scorers=[evals.exact()])
    assert grown.experiment != first.experiment and len(calls) == 10
    infos = evals.list_experiments(th, evaluation="same")
    assert [i.name for i in infos] == [grown.experiment, fresh.experiment, first.experiment]
    assert all(i.status == "completed" and i.summary is not None for i in infos)
    loaded = evals.load(th, first.experiment)
    assert loaded.summary["exact"] == first.summary["exact"] and loaded.cases[0].case.id == "refund"


def test_an_explicit_experiment_with_another_dataset_is_refused(th: tether.Harness) -> None:
    evals.run(
        th, "named", task=classify, dataset=dataset(), scorers=[evals.exact()], experiment="v1"
    )
    before = len(th.list_runs(limit=500))
    other = evals.Dataset([evals.Case({"text": "x"}, "y", id="x")])
    with pytest.raises(ConfigurationError, match="already exists with dataset_hash"):
        evals.run(
            th, "named", task=classify, dataset=other, scorers=[evals.exact()], experiment="v1"
        )
    assert len(th.list_runs(limit=500)) == before


def test_usage_cost_and_latency_of_a_model_backed_task(
    th: tether.Harness, server: FakeLLMServer
) -> None:
    server.set_default(Reply("billing", usage={"input_tokens": 7, "output_tokens": 2}))
    llm = model(server, "tiny")

    @th.function()
    async def ask(ctx: tether.Context) -> str:
        resp = await ctx.step.llm("ask", model=llm, messages=[{"role": "user", "content": "x"}])
        return str(resp.text)

    result = evals.run(th, "usage", task=ask, dataset=dataset(), scorers=[evals.exact()])
    entry = result.cases[0]
    assert entry.usage["input_tokens"] == 7 and entry.usage["output_tokens"] == 2
    assert entry.latency_s is not None and entry.latency_s > 0
    assert result.tokens == 27 and server.request_count() == 3


def test_arun_inside_an_event_loop(th: tether.Harness) -> None:
    @th.function()
    async def upper(ctx: tether.Context) -> str:
        return str(ctx.event.data["text"]).upper()

    async def main() -> evals.EvalResult:
        return await evals.arun(
            th, "async", task=upper, dataset=dataset(), scorers=[evals.contains("P")]
        )

    result = asyncio.run(main())
    assert result.summary["contains"].n == 3 and result.cases[0].output == "PLEASE REFUND ME"


def test_a_progress_bar_on_request(th: tether.Harness, capsys: pytest.CaptureFixture[str]) -> None:
    evals.run(th, "bar", task=classify, dataset=dataset(), scorers=[evals.exact()], progress=True)
    assert "3/3" in capsys.readouterr().err


def test_bad_input_is_a_clear_error_and_stores_nothing(th: tether.Harness, tmp_path: Path) -> None:
    cases = dataset()
    attempts: list[tuple[dict[str, Any], str]] = [
        ({"task": 42}, "task= must be a function registered"),
        ({"task": "nope"}, "no function 'nope' is registered"),
        ({"task": lambda: 1}, "must take one argument"),
        ({"scorers": ["exactly"]}, "unknown scorer 'exactly'"),
        ({"scorers": [evals.exact(), object()]}, "is not a scorer"),
        ({"scorers": [evals.contains("a"), evals.contains("b")]}, "two scorers are named"),
        ({"repeat": 0}, "repeat must be an integer >= 1"),
        ({"concurrency": 0}, "concurrency must be an integer >= 1"),
        ({"timeout": -1}, "timeout= must be a number of seconds > 0"),
        ({"dataset": str(tmp_path / "missing.jsonl")}, "does not exist"),
    ]
    for override, message in attempts:
        options: dict[str, Any] = {"task": classify, "dataset": cases, "scorers": [evals.exact()]}
        options.update(override)
        with pytest.raises(ConfigurationError, match=message):
            evals.run(th, "bad", **options)
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        evals.run(th, "bad", task=classify, dataset=cases, scorers=[evals.similarity(threshold=3)])
    assert th.list_runs(limit=10) == []
    assert evals.list_experiments(th) == []


def test_a_task_over_its_timeout_is_an_error(th: tether.Harness) -> None:
    @th.function()
    async def stuck(ctx: tether.Context) -> str:
        await ctx.step.wait_for_event("never", event="never.sent")
        return "unreachable"

    cases = evals.Dataset([evals.Case({"text": "x"}, "y", id="x")])
    result = evals.run(th, "stuck", task=stuck, dataset=cases, scorers=["exact"], timeout=0.3)
    [entry] = result.cases
    assert entry.status == "error" and entry.error is not None
    assert entry.error["type"] == "RunTimeout" and entry.scores["exact"].value == 0.0


def test_a_callable_returning_an_llm_response_has_its_usage_counted(
    th: tether.Harness, server: FakeLLMServer
) -> None:
    import tether.llm

    server.set_default(Reply("billing", usage={"input_tokens": 5, "output_tokens": 1}))
    llm = model(server, "tiny")

    async def ask(value: dict[str, Any]) -> Any:
        return await tether.llm.acomplete(llm, value["text"])

    cases = evals.Dataset(dataset()[:1])
    result = evals.run(th, "resp", task=ask, dataset=cases, scorers=[evals.contains("billing")])
    [entry] = result.cases
    assert entry.usage == {"input_tokens": 5, "output_tokens": 1} | {
        k: 0 for k in ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
    }
    assert entry.output["text"] == "billing" and entry.scores["contains"].passed


def test_read_functions_for_the_dashboard(th: tether.Harness) -> None:
    result = evals.run(th, "pages", task=classify, dataset=dataset(), scorers=["exact"], repeat=2)
    page = evals.experiment_cases(th, result.experiment, offset=2, limit=3)
    assert [(c.case.id, c.repeat) for c in page] == [("crash", 0), ("crash", 1), ("hello", 0)]
    assert all(th.get_run(c.case_run_id).function_id == "tether.eval.case" for c in page)
    lazy = evals.load_lazy(th, result.experiment)
    assert lazy.summary == result.summary and len(lazy.cases) == 6
    assert lazy.cases[0].case == dataset()[0]  # rebuilt from the case run's input
    [info] = evals.list_experiments(th)
    assert info.to_dict()["summary"]["scorers"]["exact"]["n"] == 6 and info.cases == 3


def test_a_dataset_file_path_and_a_suite(th: tether.Harness, tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"input": "refund", "expected": "billing"}\n{"input": "hi", "expected": "x"}\n'
    )
    result = evals.run(th, "file", task=classify, dataset=str(path), scorers=["exact"])
    assert result.summary["exact"].n == 2 and result.summary["exact"].mean == 0.5
    suite = evals.Suite("file", task=classify, dataset=path, scorers=["exact"], threshold=0.5)
    again = suite.run(th)
    assert again.experiment == result.experiment  # the same code on the same data
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        evals.Suite("bad", task=classify, dataset=path, scorers=["exact"], threshold=2)

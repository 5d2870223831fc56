"""Model-backed scorers over real HTTP: ``similarity`` on embeddings and ``judge`` as a
durable LLM step (FakeLLMServer counts the requests), and the real local model as a judge."""

from __future__ import annotations

import json
from typing import Any

import pytest

import tether
from tether import evals
from tether.testing import FakeLLMServer

from .conftest import RecordedRequest, Reply, model

CASES = evals.Dataset(
    [
        evals.Case({"text": "please refund me"}, "We will refund you today.", id="refund"),
        evals.Case({"text": "the app crashes"}, "We are fixing the crash.", id="crash"),
    ]
)


def answer(value: dict[str, Any]) -> str:
    return "Thank you, we will refund you." if "refund" in value["text"] else "No idea, go away."


def test_similarity_is_the_cosine_of_embeddings(th: tether.Harness, server: FakeLLMServer) -> None:
    embedder = model(server, "embedder")
    scorer = evals.similarity(threshold=0.5, model=embedder)
    result = evals.run(th, "sim", task=answer, dataset=CASES, scorers=[scorer])
    assert server.request_count(wire="openai-embed") == 2  # one call per case: both texts
    for entry in result.cases:
        vectors = tether.llm.embed(embedder, [entry.output, entry.case.expected]).vectors
        cos = evals.models.cosine(vectors[0], vectors[1])
        assert entry.scores["similarity"].value == pytest.approx(max(0.0, cos), abs=1e-9)
        assert entry.scores["similarity"].passed == (max(0.0, cos) >= 0.5)
    identical = evals.Dataset([evals.Case("same", "same", id="same")])
    before = server.request_count()
    same = evals.run(th, "sim-same", task=lambda v: v, dataset=identical, scorers=[scorer])
    assert same.cases[0].scores["similarity"].value == 1.0 and server.request_count() == before


def test_similarity_without_expected_or_with_a_failing_model_is_unscored(
    th: tether.Harness, server: FakeLLMServer
) -> None:
    server.fault("auth", times=10)  # 401: never retried
    scorer = evals.similarity(model=model(server, "embedder"))
    cases = evals.Dataset([evals.Case("a", "b", id="x"), evals.Case("a", id="no-expected")])
    result = evals.run(th, "sim-bad", task=lambda v: v + "!", dataset=cases, scorers=[scorer])
    by_id = {c.case.id: c.scores["similarity"] for c in result.cases}
    assert by_id["x"].unscored and "auth" in str(by_id["x"].error).lower()
    assert by_id["no-expected"].unscored and "no expected value" in str(by_id["no-expected"].error)
    assert result.summary["similarity"].unscored == 2 and result.summary["similarity"].mean is None


def verdicts(request: RecordedRequest) -> Reply:
    prompt = request.body["messages"][-1]["content"]
    if "go away" in prompt:
        return Reply(json.dumps({"reason": "The reply is rude.", "verdict": "fail"}))
    return Reply(json.dumps({"reason": "Polite and on topic.", "verdict": "pass"}))


def test_the_judge_is_a_durable_llm_step_at_temperature_zero(
    th: tether.Harness, server: FakeLLMServer
) -> None:
    server.set_default(verdicts)
    judge = evals.judge("Is the reply polite?", model=model(server, "judge"))
    result = evals.run(th, "polite", task=answer, dataset=CASES, scorers=[judge], repeat=2)
    assert server.request_count(model="judge") == 4
    body = server.requests[0].body
    assert body["temperature"] == 0.0
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["verdict"]["enum"] == ["pass", "fail"]
    assert "Rubric: Is the reply polite?" in body["messages"][-1]["content"]
    by_id = {(c.case.id, c.repeat): c.scores["judge"] for c in result.cases}
    assert by_id[("refund", 0)].passed and by_id[("refund", 0)].reason == "Polite and on topic."
    assert by_id[("crash", 1)].value == 0.0 and by_id[("crash", 1)].reason == "The reply is rude."
    summary = result.summary["judge"]
    assert (summary.mean, summary.stdev, summary.flaky) == (0.5, 0.0, 0)
    step = th.get_run(result.cases[0].case_run_id).steps[-1]
    assert step.id == "judge:judge" and step.output["parsed"]["verdict"] == "pass"
    # the same experiment again: every verdict is read back, the judge is not asked again
    again = evals.run(th, "polite", task=answer, dataset=CASES, scorers=[judge], repeat=2)
    assert again.experiment == result.experiment and server.request_count(model="judge") == 4


def test_an_invalid_or_failed_verdict_leaves_the_case_unscored(
    th: tether.Harness, server: FakeLLMServer
) -> None:
    server.reply("I think it is fine", model="judge", times=3)  # never the schema: re-asked twice
    server.fault("bad_request", model="judge", times=1)
    judge = evals.judge("Polite?", model=model(server, "judge"))
    result = evals.run(th, "invalid", task=answer, dataset=CASES, scorers=[judge], concurrency=1)
    first, second = (c.scores["judge"] for c in result.cases)
    assert first.unscored and "did not validate" in str(first.error)
    assert second.unscored and "bad" in str(second.error).lower()
    assert server.request_count(model="judge") == 4
    assert result.summary["judge"].unscored == 2 and result.summary["judge"].mean is None


def test_the_judge_scores_directly_outside_a_run(server: FakeLLMServer) -> None:
    """``judge(...).score(case, output)`` called by hand: one model call, the verdict as a
    Score; a call that fails is an unscored Score naming the error, not an exception."""
    import asyncio

    server.set_default(verdicts)
    judge = evals.judge("Is the reply polite?", model=model(server, "judge"))
    case = next(iter(CASES))
    polite = asyncio.run(judge.score(case, "Thank you, we will refund you."))
    rude = asyncio.run(judge.score(case, "No idea, go away."))
    assert (polite.value, polite.passed, polite.reason) == (1.0, True, "Polite and on topic.")
    assert (rude.value, rude.passed) == (0.0, False)
    assert server.request_count(model="judge") == 2
    server.fault("auth", model="judge", times=5)
    failed = asyncio.run(judge.score(case, "Thank you."))
    assert failed.unscored and "auth" in str(failed.error).lower()


@pytest.mark.local_model
def test_the_local_model_judges_offline(th: tether.Harness) -> None:
    pytest.importorskip("llama_cpp")
    cases = evals.Dataset([evals.Case("What is 2 + 2?", "4", id="sum")])
    judge = evals.judge("Does the output answer the question correctly?", max_tokens=64)
    result = evals.run(
        th, "local-judge", task=lambda q: "2 + 2 = 4", dataset=cases, scorers=[judge]
    )
    score = result.cases[0].scores["judge"]
    # a 135M model's verdict is not reliable, but it is a recorded pass/fail or an explained gap
    assert (score.value in (0.0, 1.0) and score.passed is (score.value == 1.0)) or score.unscored
    step = th.get_run(result.cases[0].case_run_id).steps[-1]
    assert step.id == "judge:judge" and step.output["model"] == "local:smollm2-135m"

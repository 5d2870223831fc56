"""The end of ``tether demo``: what happened, the runs audit, and an eval of the answers."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

import tether
from tether import evals

if TYPE_CHECKING:
    from tether.demo.payments import PaymentsServer
    from tether.demo.run import Driver
    from tether.testing import FakeLLMServer

#: The eval: what each answer must mention (the local model's answer is held to it too).
EXPECTED: dict[str, list[str]] = {
    "conv-ada-1#1": ["TRK-88213", "Friday"],
    "conv-ben-1#1": ["$25.00", "B-2002"],
    "conv-cy-1#2": ["3-5 business days"],
    "conv-ada-2#1": ["email"],  # from her long-term memory
    "conv-ben-2#1": ["3-5 business days"],  # the local model answers this one
}


def _base(step_id: str) -> str:
    return step_id.split(":")[0]


def _llm_steps(runs: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    return [
        (r, s.output)
        for r in runs
        for s in r.steps
        if _base(s.id) in ("think", "answer") and isinstance(s.output, dict) and "model" in s.output
    ]


def _raw_scan(store_url: str, needle: bytes) -> bool | None:
    """Whether ``needle`` is anywhere in the SQLite file or its WAL, read as raw bytes
    (None for a store that is not a SQLite file)."""
    if not store_url.startswith("sqlite:///"):
        return None
    path = Path(store_url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]
    return any(f.exists() and needle in f.read_bytes() for f in files)


def _short(model: str, hosted: str) -> str:
    return (
        "hosted-large (FakeLLMServer)"
        if model == hosted.split(":", 1)[1] or model == hosted
        else model
    )


def mentions(case: evals.Case, output: Any) -> evals.Score:
    """The share of the expected facts the answer mentions."""
    facts = list(case.expected or [])
    text = str(output or "")
    found = [f for f in facts if f.lower() in text.lower()]
    missing = [f for f in facts if f not in found]
    value = len(found) / len(facts) if facts else 0.0
    return evals.Score(value, passed=not missing, reason=f"missing {missing}" if missing else "")


def report(
    th: tether.Harness,
    d: Driver,
    pay: PaymentsServer,
    hosted: FakeLLMServer,
    hosted_model: str,
    console: Console,
) -> bool:
    from tether.demo.agent import EMBEDDER

    scene = d.scene
    replies = [th.get_run(r.id) for r in th.list_runs("support-reply", limit=200)]
    desks = [th.get_run(r.id) for r in th.list_runs("policy-desk", limit=200)]
    refunds = [th.get_run(r.id) for r in th.list_runs("refund", limit=200)]
    statuses = collections.Counter(r.status.value for r in replies)
    conversations = {m["conversation_id"] for m in scene.messages}

    tools: collections.Counter[str] = collections.Counter()
    by_model: collections.Counter[str] = collections.Counter()
    failed_llm: collections.Counter[str] = collections.Counter()
    tokens = 0
    for _, out in _llm_steps(replies + desks):
        usage = out.get("usage") or {}
        tokens += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        by_model[_short(str(out["model"]), hosted_model)] += 1
        for tc in out.get("tool_calls") or []:
            tools[tc["name"]] += 1
        for a in out.get("attempts") or []:
            if not a.get("ok"):
                failed_llm[f"{a.get('error_class')} ({a.get('status') or '-'})"] += 1
    fallbacks = sum(n for m, n in by_model.items() if m.startswith("local:"))
    builds = [b for r in replies for b in (r.output or {}).get("windows") or []]
    compactions = [
        s
        for r in replies
        for s in r.steps
        if _base(s.id) == "context.compact" and s.status == "completed"
    ]
    saved = sum(b.get("saved", 0) for b in builds)
    folds = [c for r in replies for c in (r.output or {}).get("compactions") or []]
    recalled = sum(1 for b in builds for h in b["retrieved"] if h.startswith("memory:"))
    step_retries = sum(
        1 for r in replies + desks + refunds for s in r.steps for a in s.attempts if a.error_type
    )
    audit = tether.audit.runs(th)
    charges = pay.charges
    requests = pay.requests
    per_refund = collections.Counter(c.order_id for c in charges)
    exactly_once = bool(charges) and all(n == 1 for n in per_refund.values())
    repeated = len(requests) - len({k for _, k in requests})

    t = Table(title="what happened", show_header=False)
    t.add_row("conversations / customer messages", f"{len(conversations)} / {len(scene.messages)}")
    deleted = (scene.forgotten.get("forgotten") or {}).get("runs", 0)
    t.add_row(
        "replies completed / cancelled (stale)",
        f"{statuses['completed']} / {statuses['cancelled']} (and {deleted} deleted with a forgotten customer)",
    )
    t.add_row(
        "tool calls",
        f"{sum(tools.values())} (" + ", ".join(f"{k} {v}" for k, v in sorted(tools.items())) + ")",
    )
    t.add_row("sub-agent runs (policy desk, ctx.step.invoke)", str(len(desks)))
    t.add_row("LLM calls by model", ", ".join(f"{k}: {v}" for k, v in by_model.items()))
    t.add_row("fallbacks to the local model", str(fallbacks))
    t.add_row("LLM tokens (input + output, every attempt)", f"{tokens:,}")
    t.add_row(
        "LLM failed attempts absorbed",
        ", ".join(f"{k}: {v}" for k, v in failed_llm.items()) or "-",
    )
    t.add_row("step retries absorbed (order database)", str(step_retries))
    t.add_row("retries absorbed (tether audit runs)", str(audit.total.retries_absorbed))
    t.add_row("hosted model circuit", th.circuit_breaker.state(hosted_model))
    t.add_row(
        "SIGKILL mid-conversation",
        f"worker pid {scene.kill.get('pid')}; a second worker finished it in "
        f"{scene.kill.get('recovery_s', 0):.1f}s",
    )
    t.add_row(
        "payments API: requests / refunds recorded",
        f"{len(requests)} / {len(charges)} ({repeated} repeated with the same idempotency key)",
    )
    t.add_row(
        "refunds issued exactly once",
        ("yes: " if exactly_once else "NO: ")
        + ", ".join(f"{c.order_id} ${c.amount:.2f} ({c.charge_id})" for c in charges),
    )
    t.add_row(
        "stale reply cancelled, its refund kept",
        f"run {scene.cancelled.get('run_id')} {scene.cancelled.get('status')}; refund was "
        f"{scene.cancelled.get('refund_status')}, then approved and issued",
    )
    windows = len({r.input["conversation_id"] for r in replies if r.input})
    budget = builds[0]["budget"] if builds else "-"
    t.add_row(
        "context windows",
        f"{windows} windows of {budget} tokens (policy pinned), {len(builds)} builds, "
        f"{len(compactions)} compaction(s)",
    )
    t.add_row(
        "compactions (summarizer: the hosted model)",
        ", ".join(
            f"{c['folded']} items folded, {c['before']} -> {c['after']} tokens" for c in folds
        )
        or "-",
    )
    t.add_row("tokens saved by the windows", f"{saved:,} (on the calls after a compaction)")
    how = f"hybrid search with {EMBEDDER}" if EMBEDDER else "full-text search, no embedder"
    t.add_row("long-term memories retrieved into a window", f"{recalled} ({how})")
    counts = scene.forgotten.get("forgotten") or {}
    t.add_row(
        "customer dee forgotten (th.subject().forget())",
        ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        + f"; erased from the file: {'yes' if scene.forgotten.get('erased') else 'no'}",
    )
    leftover = "customer:dee" in th.subjects()
    found = _raw_scan(th.store_url, b"Lisbon")
    t.add_row(
        "after forgetting",
        f"subject listed: {'yes' if leftover else 'no'}; raw scan of the store for what "
        f"dee said ('Lisbon'): "
        + {True: "FOUND", False: "not found", None: "n/a (not a SQLite file)"}[found],
    )
    console.print(t)

    if not console.is_terminal:  # piped: room for the audit's tables
        console = Console(file=console.file, width=max(console.width, 120), highlight=False)
    console.rule("tether audit runs")
    from tether.audit.runs_text import render

    render(audit, console)

    console.rule("eval of the agent's answers")
    cases = [
        evals.Case(input=mid, expected=facts)
        for mid, facts in EXPECTED.items()
        if mid in scene.answers
    ]

    def answer(message_id: str) -> str:
        return str(scene.answers[message_id].get("reply", ""))

    result = evals.run(
        th,
        "support-answers",
        task=answer,
        dataset=evals.Dataset(cases),
        scorers=[mentions],
        progress=False,
        fresh=True,  # a store given with --store may hold an earlier demo's experiment
    )
    summary = result.summary["mentions"]
    for c in result.cases:
        who = scene.answers[c.case.input].get("model") or "-"
        score = c.scores["mentions"]
        console.print(
            f"  {c.case.input}: {score.value:.2f} ({_short(str(who), hosted_model)}) {score.reason}"
        )
    console.print(
        f"eval score (mentions): mean {summary.mean:.2f}, pass rate {summary.pass_rate:.2f} over {summary.n} answers"
    )
    return (
        exactly_once
        and repeated >= 1
        and statuses["cancelled"] == 1
        and scene.cancelled.get("refund_status") == "waiting"
        and bool(scene.forgotten.get("erased"))
        and not leftover
        and not found
        and all(a["status"] == "completed" for a in scene.answers.values())
    )

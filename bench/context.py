"""Evidence recall of context windows at 1k, 2k and 4k tokens, against baselines in the same run.

For every question of the synthetic conversations of ``bench/context_data.py`` (each
labelled with the turns that hold its current answer), the window is built from everything
said before the question plus the question, at each budget, by:

- ``tether``: ``tether.context.build`` with its default BM25 retriever over the window's
  own turns (memory slot 10% of the budget), no summarizer;
- ``tether mem30%``: the same with a 30% memory slot (not the default; shows the trade-off);
- ``last-N``: ``langchain_core.messages.trim_messages`` (strategy "last", start on a human
  message): what LangChain users reach for;
- ``bm25-only``: the best hits of the same BM25 retriever (the same passages) packed into
  the whole budget, nothing else;
- ``embed-only``: the same by cosine similarity of ``tether.llm.embed("local:all-minilm-l6-v2")``
  vectors, when that embedder is available.

Reported per budget and method: evidence recall (share of evidence turns present: verbatim,
stubbed or retrieved), answer present (the answer's text is in the messages), tokens per
query, and build time p50/p95 in ms (p95 also for windows of 600 turns or more, and the
p95 of the build's own CPU time, which a busy machine does not inflate). Tokens are
counted by ``tether.context.ApproxCounter`` for every method. Run:

    PYTHONPATH=src /work/bench-venv/bin/python bench/context.py [--conversations 5]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from context_data import dataset

from tether.context import (
    ApproxCounter,
    ContextItem,
    ContextSettings,
    MemoryWindowLog,
    WindowRetriever,
    build,
    message_item,
)
from tether.llm.types import Message, ToolCall

SYSTEM = "You are a helpful assistant. Answer from the conversation."
BUDGETS = (1000, 2000, 4000)
COUNTER = ApproxCounter()

Result = tuple[set[int], str, int, float, float]  # turns present, text, tokens, wall s, CPU s


def to_message(turn: dict[str, Any]) -> Message:
    calls = [ToolCall(**c) for c in turn.get("tool_calls", [])]
    return Message(
        role=turn["role"],
        content=turn["content"],
        tool_calls=calls,
        tool_call_id=turn.get("tool_call_id"),
        name=turn.get("name"),
    )


class Tether:
    def __init__(self, memory_share: float = 0.10) -> None:
        self.settings = ContextSettings(memory_share=memory_share)
        self.log = MemoryWindowLog()
        self.turn_of: dict[int, int] = {}

    def feed(self, turn: dict[str, Any]) -> None:
        stored = self.log.append([message_item(to_message(turn))])[0]
        self.turn_of[stored.seq] = turn["i"]

    def run(self, budget: int) -> Result:
        start, cpu = time.perf_counter(), time.process_time()
        built = build(
            self.log, budget=budget, system=SYSTEM, counter=COUNTER, settings=self.settings
        )
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        seqs = built.included() | {
            int(r[5:]) for r in built.report.retrieved if r.startswith("item:")
        }
        text = "\n".join(m.content for m in built.messages)
        return (
            {self.turn_of[s] for s in seqs if s in self.turn_of},
            text,
            built.report.tokens,
            took,
            cpu,
        )


class LastN:
    def __init__(self) -> None:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        self.kinds = {"user": HumanMessage, "assistant": AIMessage, "tool": ToolMessage}
        self.system = SystemMessage(content=SYSTEM, id="system")
        self.messages: list[Any] = []
        self.ours: dict[str, Message] = {}

    def feed(self, turn: dict[str, Any]) -> None:
        kw: dict[str, Any] = {"content": turn["content"], "id": str(turn["i"])}
        if turn.get("tool_calls"):
            kw["tool_calls"] = [
                {"id": c["id"], "name": c["name"], "args": c["arguments"]}
                for c in turn["tool_calls"]
            ]
        if turn["role"] == "tool":
            kw["tool_call_id"] = turn["tool_call_id"]
        self.messages.append(self.kinds[turn["role"]](**kw))
        self.ours[str(turn["i"])] = to_message(turn)

    def count(self, messages: list[Any]) -> int:
        return COUNTER.count_messages(
            [self.ours.get(m.id) or Message(role="system", content=SYSTEM) for m in messages]
        )

    def run(self, budget: int) -> Result:
        from langchain_core.messages import trim_messages

        start, cpu = time.perf_counter(), time.process_time()
        kept = trim_messages(
            [self.system, *self.messages],
            max_tokens=budget,
            token_counter=self.count,
            strategy="last",
            start_on="human",
            include_system=True,
            allow_partial=False,
        )
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        turns = {int(m.id) for m in kept if m.id != "system"}
        return turns, "\n".join(str(m.content) for m in kept), self.count(kept), took, cpu


class Packing:
    """The best-scoring turns before the question, packed into the budget."""

    def __init__(
        self,
        score: Callable[[str, int], list[tuple[int, float, str]]],
        index: Callable[[dict[str, Any]], None],
    ) -> None:
        self.score, self.index = score, index
        self.turns: list[dict[str, Any]] = []

    def feed(self, turn: dict[str, Any]) -> None:
        if self.turns:
            self.index(self.turns[-1])  # the question itself is not a candidate
        self.turns.append(turn)

    def run(self, budget: int) -> Result:
        start, cpu = time.perf_counter(), time.process_time()
        question = self.turns[-1]
        lines: list[str] = []
        present = {question["i"]}
        base = [
            Message(role="system", content=SYSTEM),
            Message(role="user", content=question["content"]),
        ]
        used = COUNTER.count_messages(base)
        for i, _, text in self.score(question["content"], 60):
            line = f"#{i} {self.turns[i]['role']}: {text}"
            cost = COUNTER.count(line) + 1
            if used + cost <= budget:
                lines.append(line)
                present.add(i)
                used += cost
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        return present, "\n".join([*lines, question["content"]]), used, took, cpu


def bm25_packing() -> Packing:
    """tether's own BM25 retriever (the same passages), packed into the whole budget."""
    retriever = WindowRetriever()
    items: list[ContextItem] = []

    def index(turn: dict[str, Any]) -> None:
        items.append(message_item(to_message(turn)).model_copy(update={"seq": turn["i"] + 1}))
        retriever.sync(items)

    return Packing(
        lambda q, k: [(int(h.id[5:]) - 1, h.score, h.text) for h in retriever.search(q, k)], index
    )


def embed_packing() -> Packing | None:
    try:
        import numpy as np

        from tether.llm import embed

        embed(model="local:all-minilm-l6-v2", input=["probe"])
    except Exception as exc:  # not installed here, or not built yet
        print(
            f"embed-only skipped: local:all-minilm-l6-v2 is not usable ({type(exc).__name__}: {exc})"
        )
        return None
    vectors: list[Any] = []
    ids: list[int] = []
    texts: list[str] = []

    def index(turn: dict[str, Any]) -> None:
        v = np.asarray(
            embed(model="local:all-minilm-l6-v2", input=[turn["content"][:2000] or " "]).vectors[0]
        )
        vectors.append(v / (np.linalg.norm(v) or 1.0))
        ids.append(turn["i"])
        texts.append(turn["content"])

    def score(query: str, k: int) -> list[tuple[int, float, str]]:
        q = np.asarray(embed(model="local:all-minilm-l6-v2", input=[query]).vectors[0])
        sims = np.stack(vectors) @ (q / (np.linalg.norm(q) or 1.0))
        best = np.argsort(-sims)[:k]
        return [(ids[j], float(sims[j]), texts[j]) for j in best]

    return Packing(score, index)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))] if ordered else 0.0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="evidence recall of context windows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--conversations", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=300)
    args = parser.parse_args()
    data = dataset(args.seed, args.conversations, args.pairs)
    gc.collect()
    gc.freeze()  # the data set is the harness's, not a method's: no method pays to scan it
    try:
        import langchain_core  # noqa: F401

        have_langchain = True
    except ImportError:
        print(
            "last-N skipped: langchain_core is not installed (pip install langchain-core in the bench venv)"
        )
        have_langchain = False
    first_embed = embed_packing()
    rows: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    n_questions = 0
    for conv in data["conversations"]:
        methods: dict[str, Any] = {
            "tether": Tether(),
            "tether mem30%": Tether(0.30),
            "bm25-only": bm25_packing(),
        }
        if have_langchain:
            methods["last-N"] = LastN()
        if first_embed is not None:
            methods["embed-only"] = first_embed if n_questions == 0 else embed_packing()
        asked = {q["turn"]: q for q in conv["questions"]}
        for turn in conv["turns"]:
            for m in methods.values():
                m.feed(turn)
            q = asked.get(turn["i"])
            if q is None:
                continue
            n_questions += 1
            for budget in BUDGETS:
                for name, m in methods.items():
                    present, text, tokens, took, cpu = m.run(budget)
                    assert tokens <= budget, (name, tokens, budget)
                    row = rows[(budget, name)]
                    row["recall"].append(len(set(q["evidence"]) & present) / len(q["evidence"]))
                    row["answer"].append(float(q["answer"] in text))
                    row["tokens"].append(tokens)
                    row["ms"].append(took * 1000)
                    row["cpu"].append(cpu * 1000)
                    if turn["i"] >= 600:
                        row["ms600"].append(took * 1000)
    turns = sum(len(c["turns"]) for c in data["conversations"])
    print(
        f"{len(data['conversations'])} conversations, {turns} turns, {n_questions} questions (seed {args.seed})"
    )
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; CPU ms is the build's own CPU time"
    )
    print(
        f"{'budget':>6} {'method':<14} {'recall':>7} {'answer':>7} {'tokens':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p95 600+':>8} {'CPU p50':>8} {'CPU p95':>8}"
    )
    for (budget, name), row in sorted(rows.items()):
        print(
            f"{budget:>6} {name:<14} {statistics.mean(row['recall']):>7.3f} {statistics.mean(row['answer']):>7.3f} "
            f"{statistics.mean(row['tokens']):>7.0f} {percentile(row['ms'], 0.5):>7.2f} "
            f"{percentile(row['ms'], 0.95):>7.2f} {percentile(row['ms600'], 0.95):>8.2f} "
            f"{percentile(row['cpu'], 0.5):>8.2f} {percentile(row['cpu'], 0.95):>8.2f}"
        )


if __name__ == "__main__":
    main()

"""Compaction survival: what repeated compactions keep, on the conversations of
``bench/context_data.py``.

Each conversation is replayed into a window (budget 2,000 tokens) with a pinned profile and
``extractive_summarizer`` (no model: a real model summarises better, the mechanism is the
same); ``abuild`` runs before every question, compacting at the hard trigger. After each
build: the pin verbatim, tool calls and results paired, the budget kept, and for updated
facts whether the old value is shown without the new one (a stale fact served as current).

    PYTHONPATH=src python bench/context_survival.py [--conversations 5] [--store]

``--store`` replays into ``th.context`` windows on a SQLite file (the store-backed log,
compaction appended as summaries there) instead of the in-memory ``WindowCore``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from context_data import dataset

import tether
from context import to_message
from tether.context import MemoryWindowLog, WindowCore, check_all, extractive_summarizer

PIN = "Customer profile: Ada Lovelace, account ACC-7781, ships to /addr/berlin-10115"


async def replay(conv: dict[str, object], budget: int, th: Any = None) -> dict[str, int]:
    w: Any
    if th is None:
        w = WindowCore(
            MemoryWindowLog(),
            budget=budget,
            system="Answer from the conversation.",
            summarizer=extractive_summarizer,
        )
    else:  # the store-backed window of th.context, same settings
        w = th.context(
            f"survival:{conv['id']}",
            budget=budget,
            system="Answer from the conversation.",
            summarizer=extractive_summarizer,
        )
    w.pin("profile", PIN)
    stats = dict.fromkeys(
        (
            "builds",
            "compactions",
            "pin_kept",
            "orphans",
            "overruns",
            "invalid",
            "updated_asked",
            "current_shown",
            "stale_served",
        ),
        0,
    )
    asked = {q["turn"]: q for q in conv["questions"]}  # type: ignore[attr-defined]
    for turn in conv["turns"]:  # type: ignore[attr-defined]
        w.add(to_message(turn))
        q = asked.get(turn["i"])
        if q is None:
            continue
        built = await w.abuild()
        stats["builds"] += 1
        stats["compactions"] += built.report.compacted
        text = "\n".join(m.content for m in built.messages)
        stats["pin_kept"] += PIN in built.messages[0].content
        calls = {c.id for m in built.messages for c in m.tool_calls}
        results = {m.tool_call_id for m in built.messages if m.role == "tool"}
        stats["orphans"] += len(calls ^ results)
        stats["overruns"] += built.report.tokens > budget
        try:
            check_all(built.messages)
        except Exception:
            stats["invalid"] += 1
        if q["superseded"]:  # the fact was updated before this question
            stats["updated_asked"] += 1
            current = q["answer"] in text
            stats["current_shown"] += current
            stats["stale_served"] += (not current) and any(old in text for old in q["superseded"])
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description="compaction survival")
    parser.add_argument("--conversations", type=int, default=5)
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--store", action="store_true", help="th.context on a SQLite file")
    args = parser.parse_args()
    data = dataset(7, args.conversations, 300)
    total: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        th = tether.Harness(f"sqlite:///{folder}/survival.db") if args.store else None
        for conv in data["conversations"]:
            for k, v in asyncio.run(replay(conv, args.budget, th)).items():
                total[k] = total.get(k, 0) + v
        if th is not None:
            th.close()
    b = total["builds"]
    print(
        f"{'th.context (SQLite)' if args.store else 'WindowCore (memory)'}: "
        f"{args.conversations} conversations, budget {args.budget}: {b} builds, "
        f"{total['compactions']} compactions"
    )
    print(
        f"pins verbatim {total['pin_kept']}/{b}; orphaned tool calls/results {total['orphans']}; "
        f"budget overruns {total['overruns']}; invalid for a provider {total['invalid']}"
    )
    print(
        f"questions on updated facts {total['updated_asked']}: current value shown "
        f"{total['current_shown']}, stale value shown without it {total['stale_served']}"
    )


if __name__ == "__main__":
    main()

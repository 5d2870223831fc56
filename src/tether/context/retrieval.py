"""Retrieval for the memory slot: the ``Retriever`` protocol and a real BM25 index over a
window's own messages, so the pure pipeline is useful on its own. The store's hybrid index
(full text + vectors + recency) implements the same protocol.
"""

from __future__ import annotations

import heapq
import math
import re
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from tether.context.records import ContextItem, Hit


@runtime_checkable
class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[Hit]:
        """At most ``k`` hits, best first."""
        ...


_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "about",
        "also",
        "any",
        "all",
        "am",
    ]
)


def _stem(word: str) -> str:
    """A light suffix stripper: plurals, -ing, -ed, and a final -e (live, lived, living)."""
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Lower-cased words without stop words, lightly stemmed (plurals, -ing, -ed)."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class BM25Index:
    """Okapi BM25 (``k1``, ``b``) over documents added one by one; ties go to the newer."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._lengths: list[int] = []
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._total = 0

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, doc_id: str, text: str) -> None:
        doc = len(self._ids)
        words = terms(text)
        self._ids.append(doc_id)
        self._texts.append(text)
        self._lengths.append(len(words))
        self._total += len(words)
        for word, tf in Counter(words).items():
            self._postings[word].append((doc, tf))

    def search(self, query: str, k: int) -> list[Hit]:
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        avg = self._total / n or 1.0
        scores: dict[int, float] = defaultdict(float)
        for word in set(terms(query)):
            postings = self._postings.get(word)
            if not postings:
                continue
            idf = math.log(1 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
            for doc, tf in postings:
                norm = tf + self.k1 * (1 - self.b + self.b * self._lengths[doc] / avg)
                scores[doc] += idf * tf * (self.k1 + 1) / norm
        best = heapq.nlargest(k, scores.items(), key=lambda kv: (kv[1], kv[0]))
        return [Hit(id=self._ids[d], text=self._texts[d], score=s) for d, s in best if s > 0]


def indexable(item: ContextItem) -> str:
    """The text of an item worth retrieving: a message's content ("" for pins, summaries
    and an assistant message that only calls tools)."""
    return item.message.content.strip() if item.message is not None else ""


#: a text longer than this is indexed as passages of about this size
PASSAGE_CHARS = 200


def passages(text: str, size: int = PASSAGE_CHARS) -> list[str]:
    """``text`` whole when short, else split at lines and sentences into passages of about
    ``size`` characters: a fact in a long tool result scores as a short document."""
    if len(text) <= size:
        return [text]
    out: list[str] = []
    current = ""
    for piece in re.split(r"\n+|(?<=[.!?])\s+", text):
        piece = piece.strip()
        if not piece:
            continue
        if current and len(current) + len(piece) + 1 > size:
            out.append(current)
            current = ""
        current = f"{current}\n{piece}" if current else piece[: size * 2]
    if current:
        out.append(current)
    return out


class WindowRetriever:
    """BM25 over a window's messages, ids ``item:<seq>``; ``sync`` indexes what is new."""

    def __init__(self) -> None:
        self.index = BM25Index()
        self.first_seq: int | None = None
        self.last_seq = 0

    def sync(self, items: Sequence[ContextItem]) -> WindowRetriever:
        first = items[0].seq if items else None
        if first != self.first_seq or (items and items[-1].seq < self.last_seq):
            self.index, self.first_seq, self.last_seq = BM25Index(), first, 0
        for item in items:
            if item.seq > self.last_seq:
                for passage in passages(indexable(item)):
                    self.index.add(f"item:{item.seq}", passage)
                self.last_seq = item.seq
        return self

    def search(self, query: str, k: int) -> list[Hit]:
        """The best passage of each of the ``k`` best items."""
        best: dict[str, Hit] = {}
        for hit in self.index.search(query, k * 3):
            best.setdefault(hit.id, hit)
        return list(best.values())[:k]


_by_log: weakref.WeakKeyDictionary[object, WindowRetriever] = weakref.WeakKeyDictionary()


def window_retriever(items: Sequence[ContextItem], owner: object | None = None) -> WindowRetriever:
    """The BM25 retriever of a window; kept per ``owner`` (a log) and updated incrementally."""
    if owner is None:
        return WindowRetriever().sync(items)
    try:
        cached = _by_log.get(owner)
    except TypeError:  # an owner that cannot be weakly referenced
        return WindowRetriever().sync(items)
    if cached is None:
        cached = _by_log[owner] = WindowRetriever()
    return cached.sync(items)


def fuse(results: Iterable[list[Hit]], k: int, *, rrf_k: int = 60) -> list[Hit]:
    """Reciprocal-rank fusion of several retrievers' hits (scores are not comparable)."""
    scores: dict[str, float] = defaultdict(float)
    hits: dict[str, Hit] = {}
    for hit_list in results:
        for rank, hit in enumerate(hit_list):
            scores[hit.id] += 1.0 / (rrf_k + rank + 1)
            hits.setdefault(hit.id, hit)
    best = sorted(scores, key=lambda i: scores[i], reverse=True)[:k]
    return [hits[i].model_copy(update={"score": scores[i]}) for i in best]

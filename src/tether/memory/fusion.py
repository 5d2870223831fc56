"""How a search ranks: reciprocal-rank fusion of three orderings of the candidates.

A memory is a **candidate** for a query when the full-text index matches one of the query's
words, or when the cosine similarity of its embedding to the query's is at least
``MIN_SIMILARITY``; nothing else is ever a hit (that is the minimum a hit must reach). Each
candidate then has up to three ranks (1 = first): in the full-text ranking (BM25 on SQLite,
``ts_rank_cd`` on PostgreSQL), by cosine similarity, and by recency (newest first). Its score is

    score = sum(w[r] / (K + rank[r])) / sum(w[r] / (K + 1))   over the three rankings r

(a ranking a candidate is absent from adds nothing), with ``K = 60`` (Cormack et al.'s
constant) and weights text 1.0, vector 1.0, recency 0.2. The score lies in (0, 1]: 1 is the
first place everywhere. Ties go to the newer item. Ranks, not raw scores, are fused, so BM25's
unbounded scale and cosine's narrow one do not need calibrating against each other; and an
exact identifier ("ORD-99812"), first in the text ranking, outscores every memory that only
the embedding ranks first (1/61 + anything > 1/61).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

K = 60
W_TEXT = 1.0
W_VECTOR = 1.0
W_RECENCY = 0.2
#: the cosine similarity a memory must reach to be a candidate by meaning alone
MIN_SIMILARITY = 0.25
_BEST = (W_TEXT + W_VECTOR + W_RECENCY) / (K + 1)


@dataclass
class Ranked:
    id: str
    score: float
    text_rank: int | None
    vector_rank: int | None
    similarity: float | None


def fuse(
    text_ranked: Sequence[str],
    similar: Sequence[tuple[str, float]],
    created: dict[str, float],
    k: int,
) -> list[Ranked]:
    """The ``k`` best candidates. ``text_ranked``: ids best first; ``similar``: (id, cosine)
    of every embedded item (any order); ``created``: created_at of every allowed item (ids
    missing from it, e.g. filtered out by tags, are no candidates)."""
    text_rank = {i: n for n, i in enumerate((i for i in text_ranked if i in created), 1)}
    close = sorted(
        ((i, s) for i, s in similar if s >= MIN_SIMILARITY and i in created),
        key=lambda p: (-p[1], -created[p[0]]),
    )
    vector_rank = {i: n for n, (i, _) in enumerate(close, 1)}
    similarity = dict(similar)
    pool = set(text_rank) | set(vector_rank)
    recency = {i: n for n, i in enumerate(sorted(pool, key=lambda i: -created[i]), 1)}
    out = []
    for i in pool:
        total = W_RECENCY / (K + recency[i])
        if i in text_rank:
            total += W_TEXT / (K + text_rank[i])
        if i in vector_rank:
            total += W_VECTOR / (K + vector_rank[i])
        out.append(
            Ranked(i, total / _BEST, text_rank.get(i), vector_rank.get(i), similarity.get(i))
        )
    out.sort(key=lambda r: (-r.score, -created[r.id]))
    return out[:k]

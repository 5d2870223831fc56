"""How a search ranks: score-weighted reciprocal-rank fusion of three orderings.

**Candidates.** A memory is a candidate for a query when the full-text index finds one of
the query's words in it (function words such as "is" or "what" are left out; words are
stemmed, "shipping" finds "shipped"), or when the cosine similarity of its embedding to the
query's is at least ``MIN_SIMILARITY``. Nothing else is ever a hit: that is the minimum a
hit must reach.

**Three rankings.**

- Text: each query word ``t`` weighs ``idf(t) = ln(1 + (N - n + 0.5) / (n + 0.5))`` (BM25's
  idf: ``N`` current memories of the subject, ``n`` of them hold ``t``), and a memory's text
  score ``s`` is the sum over the words it holds. Memories are short, so BM25's term-frequency
  and length factors are left out; the same rule on both backends (FTS5 and ``tsvector``
  only say which memories hold which word).
- Vector: cosine similarity, exact, over the subject's vectors.
- Recency: newest first.

**Fusion.** With ``r`` a candidate's rank (1 = first) in each ranking it is in::

    score = ( W_TEXT   * (s / s_max)     / (K + r_text)
            + W_VECTOR * (cos / cos_max) / (K + r_vector)
            + W_RECENCY                  / (K + r_recency) ) / best

``K = 60`` (Cormack et al.'s constant), ``W_TEXT = 1.5``, ``W_VECTOR = 1.0``, ``W_RECENCY =
0.2``; ``best`` is the score of first place everywhere, so scores lie in (0, 1] (without an
embedder the vector term leaves ``best`` too). Plain RRF fuses ranks only, so a memory that
merely shares the common word "order" with the query would rank as well as the one holding
the rare "99812"; scaling each rank's share by its score relative to the best one keeps
weak matches weak. ``W_TEXT > W_VECTOR`` makes the memory that alone holds the query's rarest
word (an order number, a name) outrank one that only the embedding finds first, while a
memory with no word in common is still found by meaning. Ties go to the newer memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

K = 60
W_TEXT = 1.5
W_VECTOR = 1.0
W_RECENCY = 0.2
#: the cosine similarity a memory must reach to be a candidate by meaning alone
MIN_SIMILARITY = 0.25


@dataclass
class Ranked:
    id: str
    score: float
    text_rank: int | None
    vector_rank: int | None
    similarity: float | None


def text_scores(
    matches: Mapping[str, Sequence[str]], allowed: Mapping[str, float]
) -> dict[str, float]:
    """Each allowed memory's text score: the idf of the query words it holds."""
    n_docs = len(allowed)
    scores: dict[str, float] = {}
    for ids in matches.values():
        held = [i for i in ids if i in allowed]
        if not held:
            continue
        # ``ids`` may be capped by the store: a term held by that many is a common one,
        # and its idf is small whatever the exact count.
        n = max(len(ids), len(held))
        idf = math.log(1 + (n_docs - n + 0.5) / (n + 0.5))
        for i in held:
            scores[i] = scores.get(i, 0.0) + idf
    return scores


def _ranks(scores: Mapping[str, float], created: Mapping[str, float]) -> dict[str, int]:
    order = sorted(scores, key=lambda i: (-scores[i], -created[i]))
    return {i: n for n, i in enumerate(order, 1)}


def fuse(
    matches: Mapping[str, Sequence[str]],
    similar: Sequence[tuple[str, float]],
    created: Mapping[str, float],
    k: int,
    *,
    vectors: bool = True,
) -> list[Ranked]:
    """The ``k`` best candidates. ``matches``: for each query word, the ids holding it;
    ``similar``: (id, cosine) of every embedded memory; ``created``: created_at of every
    allowed memory (ids missing from it, filtered out by tags, are no candidates).
    ``vectors``: whether the query was embedded."""
    text = text_scores(matches, created)
    close = {i: s for i, s in similar if s >= MIN_SIMILARITY and i in created}
    text_rank, vector_rank = _ranks(text, created), _ranks(close, created)
    s_max = max(text.values(), default=1.0) or 1.0
    c_max = max(close.values(), default=1.0) or 1.0
    pool = set(text) | set(close)
    recency = {i: n for n, i in enumerate(sorted(pool, key=lambda i: -created[i]), 1)}
    best = (W_TEXT + W_RECENCY + (W_VECTOR if vectors else 0.0)) / (K + 1)
    similarity = dict(similar)
    out = []
    for i in pool:
        total = W_RECENCY / (K + recency[i])
        if i in text:
            total += W_TEXT * (text[i] / s_max) / (K + text_rank[i])
        if i in close:
            total += W_VECTOR * (close[i] / c_max) / (K + vector_rank[i])
        out.append(Ranked(i, total / best, text_rank.get(i), vector_rank.get(i), similarity.get(i)))
    out.sort(key=lambda r: (-r.score, -created[r.id]))
    return out[:k]

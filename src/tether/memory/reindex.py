"""``tether memory reindex``: re-embed every current memory with the configured embedder.

The store's memory index records the model and dimension its vectors were made with; a
search or a write with another embedder raises ``MemoryIndexMismatch`` until the index is
rebuilt. Reindexing switches the index to the new model first, then embeds the current items
that have no vector of it, ``batch`` at a time in seq order (one vector per item: the new one
replaces the old), so an interrupted reindex resumes where it stopped when run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tether.memory.embedder import Embedder
from tether.store.sql import SQLStore


def reindex(
    store: SQLStore,
    embedder: str,
    *,
    batch: int = 256,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed every current memory that has no vector of ``embedder``; how many were."""
    emb = Embedder(embedder)
    emb.check()
    done, after, index_set = 0, 0, False
    while True:
        rows = store.memory_to_reindex(embedder, after, batch)
        if not rows:
            break
        vectors = emb.embed([text for _, _, text in rows])
        if not index_set:
            store.memory_set_index(embedder, len(vectors[0]) // 4, time.time())
            index_set = True
        dim = len(vectors[0]) // 4
        store.memory_put_vectors(
            [(seq, subject, v) for (seq, subject, _), v in zip(rows, vectors, strict=True)],
            embedder,
            dim,
        )
        done += len(rows)
        after = rows[-1][0]
        if progress is not None:
            progress(done)
    if not index_set and store.memory_index() is not None:
        # nothing to embed (every item has a vector of this model already, or none exist)
        info = store.memory_index()
        if info is not None and info[0] != embedder:
            dim = len(emb.embed(["dimension probe"])[0]) // 4
            store.memory_set_index(embedder, dim, time.time())
    store.memory_drop_vectors(embedder)
    return done

"""Long-term memory: what an application keeps about a subject (a user, a tenant) beyond any
one conversation, searched by words and by meaning in the store itself (docs/memory.md).

``th.memory(subject)`` returns a ``Memory`` (blocking methods and ``a``-prefixed coroutine
twins); ``ctx.memory(subject)`` in durable functions keys its writes by (run, write number).
Hybrid retrieval fuses the store's full-text index, an exact cosine scan of the subject's
vectors and recency (``fusion.py``); ``reindex`` re-embeds after the embedder changes.
"""

from tether.memory.embedder import DEFAULT_EMBEDDER, Embedder
from tether.memory.fusion import MIN_SIMILARITY
from tether.memory.limits import MAX_TEXT_BYTES
from tether.memory.memory import AsyncMemory, Memory, WriteKeys, open_memory
from tether.memory.records import MemoryHit, MemoryItem
from tether.memory.reindex import reindex

__all__ = [
    "DEFAULT_EMBEDDER",
    "MAX_TEXT_BYTES",
    "MIN_SIMILARITY",
    "AsyncMemory",
    "Embedder",
    "Memory",
    "MemoryHit",
    "MemoryItem",
    "WriteKeys",
    "open_memory",
    "reindex",
]

"""The embedder of a memory: ``tether.llm.embed``/``aembed`` with one model, vectors packed
for the store (float32, little-endian, L2-normalised) and an exact scan over them (numpy).

Embedding never runs on an event loop: ``aembed`` awaits the model's own inference thread
(``local:``) or an HTTP call; many texts go in one call, which the local model batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.errors import ConfigurationError, MissingExtra

DEFAULT_EMBEDDER = "local:all-minilm-l6-v2"


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        err = MissingExtra("local", "memory", "numpy")
        err.args = (
            "memory search by meaning needs numpy, which is not installed; run: "
            'pip install torch==2.13.0 && pip install "tether[memory]" '
            "(or Harness(embedder=None) for full-text memory only)",
        )
        raise err from None
    return numpy


class Embedder:
    """One embedding model, as a memory uses it."""

    def __init__(self, model: str) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"Embedder({self.model!r})"

    def check(self) -> None:
        """Fail before anything is written when the model cannot run here (a missing extra
        names the pip command)."""
        _numpy()
        if self.model.startswith("local:"):
            from tether.llm.providers import local_embed

            if self.model != f"local:{local_embed.MODEL}":
                raise ConfigurationError(
                    f"{self.model} is not a local embedding model: the one tether runs in "
                    f"process is 'local:{local_embed.MODEL}' ({local_embed.INSTALL}); hosted "
                    "ones are named like 'openai:text-embedding-3-small'"
                )
            local_embed.check_installed()

    def pack(self, vectors: Sequence[Sequence[float]]) -> list[bytes]:
        np = _numpy()
        m = np.asarray(vectors, dtype=np.float32)
        if m.ndim != 2 or m.shape[0] == 0:
            return []
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        m = m / np.where(norms == 0, 1, norms)
        return [row.astype("<f4").tobytes() for row in m]

    def embed(self, texts: Sequence[str]) -> list[bytes]:
        from tether import llm

        self.check()
        return self.pack(llm.embed(self.model, list(texts)).vectors) if texts else []

    async def aembed(self, texts: Sequence[str]) -> list[bytes]:
        from tether import llm

        self.check()
        return self.pack((await llm.aembed(self.model, list(texts))).vectors) if texts else []


def similarities(
    query: bytes, rows: Sequence[tuple[str, float, str, bytes]]
) -> list[tuple[str, float]]:
    """(id, cosine) of every stored vector against the query's: one matrix product."""
    if not rows:
        return []
    np = _numpy()
    q = np.frombuffer(query, dtype="<f4")
    dim = q.shape[0]
    good = [r for r in rows if len(r[3]) == 4 * dim]
    if not good:
        return []
    matrix = np.frombuffer(b"".join(r[3] for r in good), dtype="<f4")
    scores = matrix.reshape(len(good), dim) @ q
    return [(r[0], float(s)) for r, s in zip(good, scores, strict=True)]

"""``Memory``: the long-term memory of one subject, over the store's hybrid index.

Each operation is written once, as a generator that yields what it needs done: embed some
texts, or call the store. A blocking driver does those in the caller's thread; a coroutine
driver awaits the embedder (never on the loop: see ``embedder.py``) and hands store calls
to a thread. ``Memory`` has the blocking methods and their ``a``-prefixed coroutine twins;
``AsyncMemory`` (``ctx.memory(...)`` in an ``async def`` durable function) has coroutines
under the plain names.

Inside a durable function the memory carries its run's ``WriteKeys``: each add, update,
delete and clear takes the next write number of the run, and the store applies a write
whose key it has seen only once (``memory_writes``), so a replayed or resumed run never
applies one twice. Write numbers follow the order the function makes its writes, as step
positions do; writes made concurrently from parallel tasks should each be awaited in turn.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, TypeVar

from tether.clock import Clock
from tether.codec import loads
from tether.errors import InvalidMemory, MemoryDisabled, MemoryIndexMismatch
from tether.memory import limits
from tether.memory.embedder import Embedder, similarities
from tether.memory.fusion import fuse
from tether.memory.records import MemoryHit, MemoryItem
from tether.store.memories import MemoryRow, NewMemory, query_terms
from tether.store.sql import SQLStore

T = TypeVar("T")
# What an operation asks for: ("embed", texts) -> list[bytes], or ("store", fn) -> fn().
Need = tuple[str, Any]
Op = Generator[Need, Any, T]
#: ids read per query word; a word more memories hold is a common one (its idf is small)
TERM_CAP = 1000
#: nearest neighbours asked of pgvector's HNSW index, where it is installed
PG_NEAREST = 200


class WriteKeys:
    """The write numbers of one execution of a durable run (see the module docstring)."""

    def __init__(self, run_id: str, *, check_only: bool = False) -> None:
        self.run_id = run_id
        self.check_only = check_only  # tether check-replay: writes are not applied
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[str, str]:
        """(write key, the id an item made by this write gets)."""
        with self._lock:
            n = self._next
            self._next += 1
        key = f"{self.run_id}:m{n}"
        return key, uuid.uuid5(uuid.NAMESPACE_URL, f"tether-memory/{key}").hex


def _new_id() -> str:
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"


def _tags_of(stored: str) -> set[str]:
    return set(loads(stored))


class _MemoryCore:
    def __init__(
        self,
        store: SQLStore,
        subject: str,
        *,
        embedder: str | None,
        clock: Clock | None = None,
        writes: WriteKeys | None = None,
    ) -> None:
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 512:
            raise InvalidMemory(
                f"a subject is a non-empty id of at most 512 characters, such as 'user:42'; "
                f"got {subject!r:.80}"
            )
        self.store = store
        self.subject = subject
        self.embedder = None if embedder is None else Embedder(embedder)
        self._clock = clock or Clock()
        self._writes = writes

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.subject!r})"

    # -- the two drivers ----------------------------------------------------------------
    def _do(self, op: Op[T]) -> T:
        result: Any = None
        while True:
            try:
                kind, arg = op.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            result = self._embed().embed(arg) if kind == "embed" else arg()

    async def _ado(self, op: Op[T]) -> T:
        result: Any = None
        while True:
            try:
                kind, arg = op.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            if kind == "embed":
                result = await self._embed().aembed(arg)
            else:
                result = await asyncio.to_thread(arg)

    def _embed(self) -> Embedder:
        assert self.embedder is not None
        return self.embedder

    # -- the operations, once -------------------------------------------------------------
    def _key(self) -> tuple[str | None, str]:
        if self._writes is None:
            return None, _new_id()
        return self._writes.take()

    def _writable(self) -> Op[None]:
        prefs = yield ("store", lambda: self.store.subject_preferences(self.subject))
        if prefs and prefs.get("memory") is False:
            raise MemoryDisabled(
                f"subject {self.subject!r} has turned long-term memory off "
                '(preferences["memory"] is False): nothing was written. Check '
                'preferences.get("memory", True) before writing, or let the subject turn it on'
            )

    def _vectors(self, texts: Sequence[str]) -> Op[list[bytes | None]]:
        if self.embedder is None:
            return [None] * len(texts)
        vectors: list[bytes] = yield ("embed", list(texts))
        return list(vectors)

    def _new(
        self,
        key: str | None,
        item: str,
        text: str,
        source: str | None,
        tags: tuple[str, ...],
        vector: bytes | None,
    ) -> NewMemory:
        model = None if self.embedder is None or vector is None else self.embedder.model
        return NewMemory(
            item,
            self.subject,
            text,
            source,
            tags,
            self._clock.now(),
            write_key=key,
            vector=vector,
            model=model,
            dimension=None if vector is None else len(vector) // 4,
        )

    def _check_index(self, vector: bytes | None) -> Op[None]:
        if vector is None or self.embedder is None:
            return
        info = yield ("store", self.store.memory_index)
        if info is not None and info != (self.embedder.model, len(vector) // 4):
            raise MemoryIndexMismatch(
                f"the store's memory vectors were made with {info[0]} ({info[1]} dimensions), "
                f"not {self.embedder.model} ({len(vector) // 4}): nothing was written. Run "
                f"`tether memory reindex --embedder {self.embedder.model}` after changing the "
                f"embedder, or configure Harness(embedder={info[0]!r})"
            )

    def _add(self, text: str, source: str | None, tags: Iterable[str]) -> Op[MemoryItem]:
        text = limits.check_text(text)
        source, clean = limits.check_source(source), limits.check_tags(tags)
        key, item = self._key()
        yield from self._writable()
        (vector,) = yield from self._vectors([text])
        yield from self._check_index(vector)
        new = self._new(key, item, text, source, clean, vector)
        if self._writes is not None and self._writes.check_only:
            return MemoryItem.from_row(
                MemoryRow(item, self.subject, text, source, clean, new.created_at, None, None)
            )
        row, _ = yield ("store", lambda: self.store.memory_add(new))
        return MemoryItem.from_row(row)

    def _add_many(
        self, texts: Sequence[str], source: str | None, tags: Iterable[str]
    ) -> Op[list[MemoryItem]]:
        if isinstance(texts, str):
            raise InvalidMemory("add_many takes a list of texts; for one text use add(text)")
        checked = [limits.check_text(t) for t in texts]
        source, clean = limits.check_source(source), limits.check_tags(tags)
        keys = [self._key() for _ in checked]
        yield from self._writable()
        vectors = yield from self._vectors(checked)
        yield from self._check_index(vectors[0] if vectors else None)
        news = [
            self._new(k, i, t, source, clean, v)
            for (k, i), t, v in zip(keys, checked, vectors, strict=True)
        ]
        if self._writes is not None and self._writes.check_only:
            return [MemoryItem(n.id, self.subject, n.text, source, clean) for n in news]
        rows = yield ("store", lambda: self.store.memory_add_many(news))
        return [MemoryItem.from_row(r) for r in rows]

    def _update(self, item: str, text: str) -> Op[MemoryItem]:
        item = self._check_id(item)
        text = limits.check_text(text)
        key, new_id = self._key()
        yield from self._writable()
        if self._writes is not None and self._writes.check_only:
            return MemoryItem(new_id, self.subject, text, supersedes=item)
        (vector,) = yield from self._vectors([text])
        yield from self._check_index(vector)
        # source and tags come from the old version, read in the write's transaction (a
        # replayed update finds its key there before looking for the old version)
        new = self._new(key, new_id, text, None, (), vector)
        row = yield ("store", lambda: self.store.memory_update(item, new))
        return MemoryItem.from_row(row)

    def _delete(self, item: str) -> Op[None]:
        item = self._check_id(item)
        key, _ = self._key()
        if self._writes is not None and self._writes.check_only:
            return
        now = self._clock.now()
        yield ("store", lambda: self.store.memory_delete(self.subject, item, key, now))

    def _clear(self) -> Op[int]:
        key, _ = self._key()
        if self._writes is not None and self._writes.check_only:
            return 0
        now = self._clock.now()
        count: int = yield ("store", lambda: self.store.memory_clear(self.subject, key, now))
        return count

    @staticmethod
    def _check_id(item: object) -> str:
        if not isinstance(item, str) or not item:
            raise InvalidMemory(f"a memory id is the str a MemoryItem's .id holds; got {item!r}")
        return item

    def _get(self, item: str) -> Op[MemoryItem]:
        item = self._check_id(item)
        row = yield ("store", lambda: self.store.memory_get(self.subject, item))
        return MemoryItem.from_row(row)

    def _list(self, tags: Iterable[str] | None) -> Op[list[MemoryItem]]:
        wanted = None if tags is None else set(limits.check_tags(tags))
        rows = yield ("store", lambda: self.store.memory_list(self.subject))
        return [MemoryItem.from_row(r) for r in rows if wanted is None or wanted & set(r.tags)]

    def _export(self) -> Op[list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = yield (
            "store",
            lambda: self.store.export_memories(self.subject),
        )
        return rows

    def _search(
        self,
        query: str,
        k: int,
        tags: Iterable[str] | None,
        vector: bytes | None = None,
        embed: bool = True,
    ) -> Op[list[MemoryHit]]:
        if not isinstance(query, str):
            raise InvalidMemory(f"a search query is a str, got {type(query).__name__}")
        if len(query.encode()) > limits.MAX_TEXT_BYTES:
            raise InvalidMemory(f"a search query is at most {limits.MAX_TEXT_BYTES} bytes")
        k = limits.check_k(k)
        wanted = None if tags is None else set(limits.check_tags(tags))
        if not query.strip():
            return []
        if vector is None and embed and self.embedder is not None:
            (vector,) = yield ("embed", [query])
        model = None if vector is None or self.embedder is None else self.embedder.model
        terms = query_terms(query)
        nearest: list[tuple[str, float]] | None = None
        if vector is not None and model is not None and self.store.dialect.name == "postgres":
            dim = len(vector) // 4
            if (yield ("store", lambda: self.store.memory_pgvector(dim))):
                nearest = yield (
                    "store",
                    lambda: self.store.memory_nearest(self.subject, model, vector, PG_NEAREST),
                )
        index, matches, items, rows = yield (
            "store",
            lambda: self.store.memory_search_sources(
                self.subject, terms, TERM_CAP, model, scan=nearest is None
            ),
        )
        if model is not None and index is not None and index[0] != model:
            raise MemoryIndexMismatch(
                f"the store's memory vectors were made with {index[0]}, not {model}: run "
                f"`tether memory reindex --embedder {model}` after changing the embedder, or "
                f"configure Harness(embedder={index[0]!r})"
            )
        created = {i: at for i, at, t in items if wanted is None or wanted & _tags_of(t)}
        if nearest is not None:
            similar = nearest
        else:
            similar = similarities(vector, rows) if vector is not None else []
        ranked = fuse(matches, similar, created, k, vectors=vector is not None)
        found = yield (
            "store",
            lambda: self.store.memory_get_many(self.subject, [r.id for r in ranked]),
        )
        return [
            _hit(found[r.id], r.score, r.text_rank, r.vector_rank, r.similarity)
            for r in ranked
            if r.id in found
        ]


def _hit(
    row: MemoryRow,
    score: float,
    text_rank: int | None,
    vector_rank: int | None,
    similarity: float | None,
) -> MemoryHit:
    item = MemoryItem.from_row(row)
    return MemoryHit(
        item.id,
        item.text,
        round(score, 6),
        item.created_at,
        item.source,
        item.tags,
        text_rank,
        vector_rank,
        similarity,
    )


class Memory(_MemoryCore):
    """The long-term memory of one subject (``th.memory(subject)``): blocking methods and
    their ``a``-prefixed coroutine twins."""

    def add(self, text: str, *, source: str | None = None, tags: Iterable[str] = ()) -> MemoryItem:
        """Remember ``text`` (at most 32 KiB); the exact text already current for the
        subject returns that item instead of a duplicate."""
        return self._do(self._add(text, source, tags))

    async def aadd(
        self, text: str, *, source: str | None = None, tags: Iterable[str] = ()
    ) -> MemoryItem:
        return await self._ado(self._add(text, source, tags))

    def add_many(
        self, texts: Sequence[str], *, source: str | None = None, tags: Iterable[str] = ()
    ) -> list[MemoryItem]:
        """``add`` for many texts: one embedding batch, one transaction."""
        return self._do(self._add_many(texts, source, tags))

    async def aadd_many(
        self, texts: Sequence[str], *, source: str | None = None, tags: Iterable[str] = ()
    ) -> list[MemoryItem]:
        return await self._ado(self._add_many(texts, source, tags))

    def search(self, query: str, k: int = 5, tags: Iterable[str] | None = None) -> list[MemoryHit]:
        """At most ``k`` current items, best first (docs/memory.md: the fusion rule)."""
        return self._do(self._search(query, k, tags))

    async def asearch(
        self, query: str, k: int = 5, tags: Iterable[str] | None = None
    ) -> list[MemoryHit]:
        return await self._ado(self._search(query, k, tags))

    def get(self, item: str) -> MemoryItem:
        return self._do(self._get(item))

    async def aget(self, item: str) -> MemoryItem:
        return await self._ado(self._get(item))

    def update(self, item: str, text: str) -> MemoryItem:
        """A new version of ``item`` (new id, ``supersedes`` = ``item``)."""
        return self._do(self._update(item, text))

    async def aupdate(self, item: str, text: str) -> MemoryItem:
        return await self._ado(self._update(item, text))

    def delete(self, item: str) -> None:
        """Delete ``item`` and the older versions it superseded."""
        self._do(self._delete(item))

    async def adelete(self, item: str) -> None:
        await self._ado(self._delete(item))

    def export(self) -> list[dict[str, Any]]:
        """Every version of every item (superseded ones too), oldest first."""
        return self._do(self._export())

    async def aexport(self) -> list[dict[str, Any]]:
        return await self._ado(self._export())

    def clear(self) -> int:
        """Delete every memory of the subject; how many rows went."""
        return self._do(self._clear())

    async def aclear(self) -> int:
        return await self._ado(self._clear())

    async def alist(self, tags: Iterable[str] | None = None) -> builtins.list[MemoryItem]:
        return await self._ado(self._list(tags))

    def list(self, tags: Iterable[str] | None = None) -> builtins.list[MemoryItem]:
        """The current items, oldest first (with ``tags``: those with any of them)."""
        return self._do(self._list(tags))


class AsyncMemory(_MemoryCore):
    """``ctx.memory(subject)`` in an ``async def`` durable function: the methods of
    ``Memory``, as coroutines under the same names."""

    async def add(
        self, text: str, *, source: str | None = None, tags: Iterable[str] = ()
    ) -> MemoryItem:
        return await self._ado(self._add(text, source, tags))

    async def add_many(
        self, texts: Sequence[str], *, source: str | None = None, tags: Iterable[str] = ()
    ) -> list[MemoryItem]:
        return await self._ado(self._add_many(texts, source, tags))

    async def search(
        self, query: str, k: int = 5, tags: Iterable[str] | None = None
    ) -> list[MemoryHit]:
        return await self._ado(self._search(query, k, tags))

    async def get(self, item: str) -> MemoryItem:
        return await self._ado(self._get(item))

    async def update(self, item: str, text: str) -> MemoryItem:
        return await self._ado(self._update(item, text))

    async def delete(self, item: str) -> None:
        await self._ado(self._delete(item))

    async def export(self) -> list[dict[str, Any]]:
        return await self._ado(self._export())

    async def clear(self) -> int:
        return await self._ado(self._clear())

    async def list(self, tags: Iterable[str] | None = None) -> builtins.list[MemoryItem]:
        return await self._ado(self._list(tags))


def open_memory(
    store: Any,
    subject: str,
    *,
    embedder: str | None,
    clock: Clock | None = None,
    writes: WriteKeys | None = None,
    asynchronous: bool = False,
) -> Memory | AsyncMemory:
    """A memory over ``store`` (a SQL store: SQLite or PostgreSQL)."""
    if not isinstance(store, SQLStore):
        raise InvalidMemory(
            f"long-term memory needs a SQL store (SQLite or PostgreSQL), not {type(store).__name__}"
        )
    cls: Callable[..., Memory | AsyncMemory] = AsyncMemory if asynchronous else Memory
    return cls(store, subject, embedder=embedder, clock=clock, writes=writes)

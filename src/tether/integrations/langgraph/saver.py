"""``TetherSaver``: a LangGraph ``BaseCheckpointSaver`` on a tether harness's store (SQLite
or PostgreSQL), sync and async. Checkpoints, metadata and pending writes are serialised by
LangGraph's serializer and kept in two tables of the store (``store/langgraph_sql.py``); a
write goes through the store's group commit, so it is on disk before ``put`` returns (as
durable as a step checkpoint). The async methods run the blocking store calls on a thread:
they never block the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from tether.errors import ConfigurationError
from tether.store import langgraph_sql as sql
from tether.store.sql import SQLStore


class TetherSaver(BaseCheckpointSaver[str]):
    """``TetherSaver(th)``: LangGraph checkpoints in ``th``'s store
    (``graph = builder.compile(checkpointer=TetherSaver(th))``). Also takes a ``Store``."""

    def __init__(self, harness: Any, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        store = harness if isinstance(harness, SQLStore) else getattr(harness, "store", None)
        if not isinstance(store, SQLStore):
            raise ConfigurationError(
                "TetherSaver takes a tether.Harness (or its SQLite or PostgreSQL store), got "
                f"{type(harness).__name__}"
            )
        self.store = store

    # -- helpers ---------------------------------------------------------------------------
    def _tuple(self, conn: Any, d: Any, row: Sequence[Any]) -> CheckpointTuple:
        thread_id, ns, checkpoint_id, parent, checkpoint, metadata = row
        writes = sql.select_writes(conn, d, thread_id, ns, checkpoint_id)
        writes.sort(key=lambda w: (w[3], w[0], w[4]))  # task_path, task_id, idx
        return CheckpointTuple(
            config=_config(thread_id, ns, checkpoint_id),
            checkpoint=self.serde.loads_typed(sql.decode(checkpoint, self.store.codec)),
            metadata=self.serde.loads_typed(sql.decode(metadata, self.store.codec)),
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=[
                (w[0], w[1], self.serde.loads_typed(sql.decode(w[2], self.store.codec)))
                for w in writes
            ],
        )

    # -- the sync interface ----------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        c = config["configurable"]
        thread_id, ns = c["thread_id"], c.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)

        def read(conn: Any, d: Any) -> CheckpointTuple | None:
            rows = sql.select_checkpoints(conn, d, thread_id, ns, checkpoint_id, None, 1)
            return self._tuple(conn, d, rows[0]) if rows else None

        found: CheckpointTuple | None = self.store.run_sql(read, write=False)
        return found

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        c = (config or {}).get("configurable", {})
        thread_id, ns = c.get("thread_id"), c.get("checkpoint_ns")
        checkpoint_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None

        def read(conn: Any, d: Any) -> list[CheckpointTuple]:
            rows = sql.select_checkpoints(
                conn, d, thread_id, ns, checkpoint_id, before_id, None if filter else limit
            )
            out = []
            for row in rows:
                if filter:
                    metadata = self.serde.loads_typed(sql.decode(row[5], self.store.codec))
                    if not all(metadata.get(k) == v for k, v in filter.items()):
                        continue
                out.append(self._tuple(conn, d, row))
                if limit is not None and len(out) >= limit:
                    break
            return out

        found: list[CheckpointTuple] = self.store.run_sql(read, write=False)
        yield from found

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        c = config["configurable"]
        thread_id, ns = c["thread_id"], c.get("checkpoint_ns", "")
        full = get_checkpoint_metadata(config, metadata)
        run_id = full.get("run_id")
        row = (
            thread_id,
            ns,
            checkpoint["id"],
            c.get("checkpoint_id"),
            None if run_id is None else str(run_id),
            sql.encode(self.serde.dumps_typed(checkpoint), self.store.codec),
            sql.encode(self.serde.dumps_typed(full), self.store.codec),
            time.time(),
        )
        self.store.run_sql(lambda conn, d: sql.put_checkpoint(conn, d, row), write=True)
        return _config(thread_id, ns, checkpoint["id"])

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        c = config["configurable"]
        key = (c["thread_id"], c.get("checkpoint_ns", ""), c["checkpoint_id"])
        rows = [
            (
                *key,
                task_id,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                sql.encode(self.serde.dumps_typed(value), self.store.codec),
                task_path,
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        self.store.run_sql(lambda conn, d: sql.put_writes(conn, d, rows), write=True)

    def delete_thread(self, thread_id: str) -> None:
        self.store.run_sql(lambda conn, d: sql.delete_thread(conn, d, thread_id), write=True)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        ids = [str(r) for r in run_ids]
        self.store.run_sql(lambda conn, d: sql.delete_for_runs(conn, d, ids), write=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.store.run_sql(
            lambda conn, d: sql.copy_thread(conn, d, source_thread_id, target_thread_id),
            write=True,
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"`` keeps the newest checkpoint of each namespace (with its pending
        writes), ``"delete"`` removes every checkpoint of the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise ConfigurationError(
                f"prune strategy {strategy!r} is not one: use 'keep_latest' or 'delete'"
            )
        threads = list(thread_ids)

        def op(conn: Any, d: Any) -> None:
            for thread_id in threads:
                if strategy == "delete":
                    sql.delete_thread(conn, d, thread_id)
                    continue
                rows = sql.select_checkpoints(conn, d, thread_id, None, None, None, None)
                seen: set[str] = set()
                old = []
                for row in rows:  # newest first within each namespace
                    if row[1] in seen:
                        old.append((row[0], row[1], row[2]))
                    seen.add(row[1])
                sql.delete_checkpoints(conn, d, old)

        self.store.run_sql(op, write=True)

    # -- the async interface: the same calls on a thread -----------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


__all__ = ["TetherSaver"]

"""``Subject``: what an application keeps about one of the people it serves (DESIGN 4b).

``th.subject("user:42")`` gives its long-term memory, its preferences, the keys of its
context windows, an export of everything kept about it, and ``forget()``, which deletes all
of it: memories (every version), windows and their items, preferences, and the runs of
functions declared with ``subject=`` together with their steps, attempts and the events
that triggered them. On SQLite nothing of it stays readable in the file or its WAL once
``forget()`` returns (``Forgotten.erased`` says so; see ``SQLiteStore.erase_deleted``); on
PostgreSQL the rows and index entries are deleted and the server reclaims the space with
VACUUM (docs/subjects.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tether.clock import Clock
from tether.durable.subjects import check_subject_id
from tether.errors import ConfigurationError
from tether.subjects.preferences import AsyncPreferences, Preferences

if TYPE_CHECKING:
    from tether.store.base import Store
    from tether.store.sql import SQLStore

FORGET_WAIT_S = 10.0  # how long forget() waits for the subject's executing runs to stop
ERASE_TIMEOUT_S = 10.0  # how long it retries a WAL checkpoint that a reader blocks
KINDS = ("memories", "windows", "items", "preferences", "runs", "events")


def sql_store(store: Store) -> SQLStore:
    """``store`` as the SQL store subjects need (every built-in backend is one)."""
    from tether.store.sql import SQLStore

    if not isinstance(store, SQLStore):
        raise ConfigurationError(
            f"subjects need one of tether's SQL stores (SQLite or PostgreSQL), not "
            f"{type(store).__name__}"
        )
    return store


class Forgotten(dict[str, int]):
    """What ``forget()`` deleted, by kind (``memories``, ``windows``, ``items``,
    ``preferences``, ``runs``, ``events``). ``erased`` is False when the store could not
    make the deleted bytes unreadable yet, and ``residue`` then says why (call ``forget()``
    again later: it finishes the erasure)."""

    def __init__(self, counts: dict[str, int], residue: str | None = None) -> None:
        super().__init__({kind: counts.get(kind, 0) for kind in KINDS})
        self.residue = residue

    @property
    def erased(self) -> bool:
        return self.residue is None

    def to_dict(self) -> dict[str, Any]:
        """The counts, ``erased`` and ``residue`` as one JSON object."""
        return {"forgotten": dict(self), "erased": self.erased, "residue": self.residue}


def summary(
    doc: dict[str, Any],
    text: Callable[[str], str] = str,
    value: Callable[[Any], Any] = lambda v: v,
) -> dict[str, Any]:
    """What ``tether subject show`` and ``GET /api/subjects/{id}`` show of an ``export()``:
    preferences, current memories, window keys, runs in brief and how many events. ``text``
    and ``value`` pass stored text through (the dashboard's redactor)."""
    current = [m for m in doc["memories"] if m.get("current", True)]
    return {
        "subject": doc["subject"],
        "preferences": value(doc["preferences"]),
        "memories": [
            {
                "id": m["id"],
                "text": text(m["text"]),
                "source": value(m.get("source")),
                "tags": m.get("tags", []),
                "created_at": m.get("created_at"),
            }
            for m in current
        ],
        "superseded_versions": len(doc["memories"]) - len(current),
        "windows": [w.get("key") for w in doc["windows"]],
        "runs": [
            {"id": r["id"], "function_id": r["function_id"], "status": r["status"]}
            for r in doc["runs"]
        ],
        "events": len(doc["events"]),
    }


class Subject:
    """One subject's data (see the module docstring). Blocking methods, with
    ``a``-prefixed coroutine twins."""

    def __init__(
        self,
        subject_id: str,
        store: SQLStore,
        *,
        clock: Clock,
        memory: Callable[[str], Any],
        cancel_local: Callable[[str], Any] | None = None,
        current_run: str | None = None,
    ) -> None:
        self.id = check_subject_id(subject_id)
        self._store = store
        self._clock = clock
        self._memory = memory
        self._cancel_local = cancel_local
        self._current_run = current_run  # the durable run using it (ctx.subject): not waited on

    def __repr__(self) -> str:
        return f"Subject({self.id!r})"

    @property
    def memory(self) -> Any:
        """The subject's long-term memory (``th.memory(id)``; ``ctx.memory(id)`` inside a
        durable function, whose writes are replay-safe)."""
        return self._memory(self.id)

    @property
    def preferences(self) -> Preferences:
        """A live mapping: each item assignment is persisted at once (JSON values only)."""
        return Preferences(self._store, self.id)

    def windows(self) -> list[str]:
        """The keys of the context windows tagged with this subject."""
        return self._store.window_keys(self.id)

    def kept(self) -> bool:
        """True when anything is kept about the subject (it was created, or owns memories,
        windows, runs or events)."""
        store = self._store
        return (
            store.subject_preferences(self.id) is not None
            or bool(store.export_memories(self.id))
            or bool(self.windows())
            or store.subject_has_runs(self.id)
        )

    # -- export ----------------------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """Everything kept about the subject as one JSON-serialisable dict: preferences,
        memories (superseded versions included), windows (with their items), the runs of
        its functions (steps and attempts included) and the events that triggered them."""
        store = self._store
        windows = [store.export_window(key) for key in self.windows()]
        runs = store.export_subject_runs(self.id)
        return {
            "subject": self.id,
            "exported_at": datetime.fromtimestamp(self._clock.now(), UTC).isoformat(),
            "preferences": store.subject_preferences(self.id) or {},
            "memories": store.export_memories(self.id),
            "windows": windows,
            "runs": runs["runs"],
            "events": runs["events"],
        }

    # -- forget ----------------------------------------------------------------------------
    def forget(
        self, *, wait: float = FORGET_WAIT_S, erase_timeout: float = ERASE_TIMEOUT_S
    ) -> Forgotten:
        """Delete everything kept about the subject; return the counts by kind.

        The subject's runs are cancelled first: those not executing at once, executing ones
        at their next step boundary (waited for up to ``wait`` seconds, then deleted all the
        same: their worker can write nothing more for them). Then its runs, steps, attempts
        and events, memories, windows and preferences are deleted, its encryption key (when
        the store keeps one per subject) destroyed, and on SQLite the deleted bytes erased
        from the file and its WAL (``Forgotten.erased``; a reader holding an old snapshot
        of the file is waited for up to ``erase_timeout`` seconds). Forgetting twice is
        harmless: the second call finishes an erasure the first could not."""
        store, subject = self._store, self.id
        self._stop_runs(wait)
        counts = dict(store.delete_subject_runs(subject, self._clock.now()))
        counts["memories"] = store.delete_subject_memories(subject)
        counts.update(store.delete_subject_windows(subject))
        prefs = store.subject_preferences(subject)
        store.delete_subject_row(subject)
        counts["preferences"] = len(prefs or {})
        store.destroy_subject_key(subject)  # with encryption at rest: its data key
        return Forgotten(counts, store.erase_deleted(erase_timeout))

    def _stop_runs(self, wait: float) -> None:
        store, subject = self._store, self.id
        executing = set(store.stop_subject_runs(subject, self._clock.now()))
        executing.discard(self._current_run or "")
        if not executing:
            return
        if self._cancel_local is not None:
            for run_id in executing:
                self._cancel_local(run_id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not executing.intersection(store.executing_subject_runs(subject)):
                return
            time.sleep(0.05)

    # -- async twins ---------------------------------------------------------------------
    async def awindows(self) -> list[str]:
        return await asyncio.to_thread(self.windows)

    async def akept(self) -> bool:
        return await asyncio.to_thread(self.kept)

    async def aexport(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.export)

    async def aforget(
        self, *, wait: float = FORGET_WAIT_S, erase_timeout: float = ERASE_TIMEOUT_S
    ) -> Forgotten:
        return await asyncio.to_thread(self.forget, wait=wait, erase_timeout=erase_timeout)


class AsyncSubject:
    """``ctx.subject(id)`` in an ``async def`` durable function: the same subject, with
    coroutine methods of the same names (``await subject.export()``), ``memory`` the
    replay-safe ``ctx.memory(id)`` and ``preferences`` an ``AsyncPreferences``."""

    def __init__(self, subject: Subject) -> None:
        self._subject = subject
        self.id = subject.id

    def __repr__(self) -> str:
        return f"AsyncSubject({self.id!r})"

    @property
    def memory(self) -> Any:
        return self._subject.memory

    @property
    def preferences(self) -> AsyncPreferences:
        return AsyncPreferences(self._subject.preferences)

    async def windows(self) -> list[str]:
        return await self._subject.awindows()

    async def kept(self) -> bool:
        return await self._subject.akept()

    async def export(self) -> dict[str, Any]:
        return await self._subject.aexport()

    async def forget(
        self, *, wait: float = FORGET_WAIT_S, erase_timeout: float = ERASE_TIMEOUT_S
    ) -> Forgotten:
        return await self._subject.aforget(wait=wait, erase_timeout=erase_timeout)

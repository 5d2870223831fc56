"""``StoreWindowLog``: the ``WindowLog`` of one window kept in a SQL store.

Every method is one store call (``SQLStore.window_*``); ``append`` is one transaction that
checks the batch with ``validate_append`` and appends it, so two processes appending to
the same key see one log. ``items`` of a long window is read incrementally by
``ContextWindow`` (``ItemCache``): only what is new since its last read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from tether.context.records import ContextItem
from tether.errors import ConfigurationError


def sql_store(store: Any) -> Any:
    """``store`` when it keeps context windows (a SQL store), else a clear error."""
    from tether.store.sql import SQLStore

    if not isinstance(store, SQLStore):
        raise ConfigurationError(
            f"context windows live in a SQL store (SQLite or PostgreSQL), not in a "
            f"{type(store).__name__}; open the harness on sqlite:// or postgresql://"
        )
    return store


class StoreWindowLog:
    """Window ``key`` of ``store`` as a ``WindowLog``. ``subject`` (whose data the window
    is) is fixed when the window is first written; its payloads are encoded with it."""

    def __init__(
        self,
        store: Any,
        key: str,
        *,
        subject: str | None = None,
        model: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = sql_store(store)
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(f"a context window needs a non-empty string key, got {key!r}")
        self.key = key
        self.subject = subject
        self.model = model
        self.clock = clock

    def append(
        self,
        items: Sequence[ContextItem],
        origins: Sequence[tuple[str, int] | None] | None = None,
    ) -> list[ContextItem]:
        result: list[ContextItem] = self.store.window_append(
            self.key,
            items,
            self.clock(),
            subject=self.subject,
            model=self.model,
            origins=origins,
        )
        return result

    def items(self, after: int = 0) -> list[ContextItem]:
        return list(self.store.window_read(self.key, after)[1])

    def read(self, after: int = 0) -> tuple[int, list[ContextItem]]:
        """(generation, items after ``after``): the generation changes on ``clear``."""
        result: tuple[int, list[ContextItem]] = self.store.window_read(self.key, after)
        return result

    def pins(self) -> dict[str, ContextItem]:
        return dict(self.store.window_pins(self.key))

    def summary(self) -> ContextItem | None:
        found: ContextItem | None = self.store.window_summary(self.key)
        return found

    def artifact(self, handle: str) -> ContextItem | None:
        found: ContextItem | None = self.store.window_artifact(self.key, handle)
        return found

    def clear(self) -> int:
        return int(self.store.clear_window(self.key, self.clock()))

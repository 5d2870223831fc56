"""``Subject.preferences``: a live mapping of a subject's preferences, kept in the store.

Every read asks the store, every item assignment writes at once (``prefs["memory"] = False``
is persisted before the statement returns), so two processes see each other's changes. A
value must be JSON (it survives ``json.dumps``/``json.loads`` unchanged); anything else
raises ``InvalidPreference`` and writes nothing. ``update()`` checks every value before it
writes them all in one write.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Protocol

from tether.errors import InvalidPreference

MAX_PREFERENCES_BYTES = 64 * 1024  # the JSON text of all of a subject's preferences


class PreferenceStore(Protocol):
    """What preferences need from the store (the SQL store's subject methods)."""

    def subject_preferences(self, subject: str) -> dict[str, Any] | None: ...

    def set_subject_preferences(self, subject: str, prefs: dict[str, Any]) -> None: ...


def check_preference(name: object, value: object) -> None:
    """Raise ``InvalidPreference`` unless ``name`` is a string and ``value`` a JSON value
    that comes back unchanged from a JSON round trip."""
    if not isinstance(name, str) or not name:
        raise InvalidPreference(
            f"preference names are non-empty strings, not {name!r}: e.g. "
            "preferences['memory'] = False"
        )
    problem = _json_problem(value)
    if problem is not None:
        raise InvalidPreference(
            f"preference {name!r} = {_short(value)} is not a JSON value ({problem}); nothing "
            "was written. Store strings, numbers, booleans, None, lists and dicts with string "
            "keys (convert datetimes, sets, tuples and objects first)."
        )


def _json_problem(value: object) -> str | None:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return str(exc)
    if json.loads(text) != value:
        return "it does not come back the same from JSON (a tuple, or a non-string key?)"
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Preferences(MutableMapping[str, Any]):
    """The live preferences of one subject (see the module docstring)."""

    def __init__(self, store: PreferenceStore, subject: str) -> None:
        self._store = store
        self._subject = subject

    def load(self) -> dict[str, Any]:
        """A copy of every preference, read now."""
        return dict(self._store.subject_preferences(self._subject) or {})

    def _save(self, prefs: dict[str, Any]) -> None:
        size = len(json.dumps(prefs))
        if size > MAX_PREFERENCES_BYTES:
            raise InvalidPreference(
                f"the preferences of subject {self._subject!r} would take {size} bytes of JSON, "
                f"over the limit of {MAX_PREFERENCES_BYTES}; nothing was written. Keep "
                "preferences small (settings, not documents: put documents in memory)."
            )
        self._store.set_subject_preferences(self._subject, prefs)

    def __getitem__(self, name: str) -> Any:
        return self.load()[name]

    def __setitem__(self, name: str, value: Any) -> None:
        check_preference(name, value)
        prefs = self.load()
        prefs[name] = value
        self._save(prefs)

    def __delitem__(self, name: str) -> None:
        prefs = self.load()
        del prefs[name]
        self._save(prefs)

    def update(self, other: Any = (), /, **more: Any) -> None:
        """Set several preferences in one write; a bad value writes none of them."""
        items = dict(other.items() if isinstance(other, Mapping) else other, **more)
        for name, value in items.items():
            check_preference(name, value)
        prefs = self.load()
        prefs.update(items)
        self._save(prefs)

    def replace(self, prefs: Mapping[str, Any]) -> None:
        """Make ``prefs`` the whole preferences, in one write; a bad value writes nothing."""
        items = dict(prefs)
        for name, value in items.items():
            check_preference(name, value)
        self._save(items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.load())

    def __len__(self) -> int:
        return len(self.load())

    def __contains__(self, name: object) -> bool:
        return name in self.load()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.load() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Preferences({self._subject!r}, {self.load()!r})"

    # -- async twins ----------------------------------------------------------------------
    async def aload(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.load)

    async def aget(self, name: str, default: Any = None) -> Any:
        return (await self.aload()).get(name, default)

    async def aset(self, name: str, value: Any) -> None:
        await asyncio.to_thread(self.__setitem__, name, value)

    async def adelete(self, name: str) -> None:
        await asyncio.to_thread(self.__delitem__, name)

    async def aupdate(self, other: Any = (), /, **more: Any) -> None:
        await asyncio.to_thread(self.update, other, **more)


class AsyncPreferences:
    """``ctx.subject(id).preferences`` in an ``async def`` durable function: the same
    live preferences, with coroutine methods (a mapping cannot await)."""

    def __init__(self, prefs: Preferences) -> None:
        self._prefs = prefs

    async def load(self) -> dict[str, Any]:
        return await self._prefs.aload()

    async def get(self, name: str, default: Any = None) -> Any:
        return await self._prefs.aget(name, default)

    async def set(self, name: str, value: Any) -> None:
        await self._prefs.aset(name, value)

    async def delete(self, name: str) -> None:
        await self._prefs.adelete(name)

    async def update(self, other: Any = (), /, **more: Any) -> None:
        await self._prefs.aupdate(other, **more)

"""Circuit breakers per provider and model, with state shareable across workers.

State lives behind ``CircuitStore``, two methods on strings. ``MemoryCircuitStore`` keeps it
in the process; ``KVCircuitStore`` adapts any object with ``kv_get(key)`` / ``kv_set(key,
value)`` -- the durable store implements those, so every worker sharing a store shares the
breakers. Writes are last-writer-wins: two workers that trip or probe at the same moment
cost at most one extra request, never a lost call.

    closed ──(in one window: >= failure_threshold failures, >= failure_rate of calls)──> open
    open ──(cooldown elapsed)──> half-open: one caller probes, the others fail over
    half-open ──(a probe or any other call succeeds)──> closed
    half-open ──(the probe fails)──> open, cooldown doubled (up to max_cooldown)

An open circuit exists to send load to fallbacks: a call with no other model left is let
through (``Permit.bypass``) at its own retry pace, so the circuit never fails a call that its
retries would have saved. Only failures that say the provider is unhealthy count
(overloaded, 5xx, timeouts, a 429 without a delay); a 429 with a server delay is rate
limiting, kept as a shared ``hold`` for at most ``max_hold`` seconds, and a 4xx is the
caller's fault.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

PREFIX = "tether.llm.circuit:"
INDEX_KEY = "tether.llm.circuit-index"  # the models whose state was ever written


class CircuitStore(Protocol):
    """Where breaker state is kept: the durable store implements this as kv_get/kv_set."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class KVStore(Protocol):
    def kv_get(self, key: str) -> str | None: ...

    def kv_set(self, key: str, value: str) -> None: ...


class MemoryCircuitStore:
    """Breaker state in this process only."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = value


class KVCircuitStore:
    """Adapts a store with ``kv_get``/``kv_set`` (tether's durable ``Store``) to ``CircuitStore``."""

    def __init__(self, store: KVStore) -> None:
        self._store = store

    def get(self, key: str) -> str | None:
        return self._store.kv_get(key)

    def set(self, key: str, value: str) -> None:
        self._store.kv_set(key, value)


@dataclass
class _State:
    state: str = "closed"  # closed | open | half_open
    failures: int = 0  # provider failures in the current window
    successes: int = 0  # successes in the window, counted once it has a failure
    window_start: float = 0.0
    open_until: float = 0.0
    cooldown: float = 0.0
    probe_until: float = 0.0
    hold_until: float = 0.0  # a server-given delay (429 + Retry-After), shared by all callers
    hold_asked: float = 0.0  # ... the delay the server asked for (the hold is capped)


@dataclass(frozen=True)
class Permit:
    """The answer to ``before_call``: go ahead now, or not before ``retry_at`` (breaker clock).

    ``reason`` says why not: ``hold`` (a server's rate-limit delay), ``open`` (the circuit
    is open) or ``probing`` (another caller is probing it); ``detail`` says it in words.
    ``bypass`` marks a call let past an open circuit because it has no other model left."""

    allowed: bool
    retry_at: float = 0.0
    probe: bool = False
    reason: Literal["", "hold", "open", "probing"] = ""
    detail: str = ""
    bypass: bool = False


@dataclass(frozen=True)
class CircuitStatus:
    """What a breaker holds about one model, as a reader sees it now (``tether llm holds``)."""

    model: str
    state: str  # closed | open | half_open
    open_until: float | None  # while open: when the next probe may start
    hold_until: float | None  # while held: when the server's delay ends
    hold_asked: float | None  # ... the delay the 429 asked for (the hold may be shorter)
    failures: int  # provider failures in the current window
    cooldown: float  # the current open period (doubles after each failed probe)

    @property
    def clear(self) -> bool:
        """Nothing to report: closed and not held."""
        return self.state == "closed" and self.hold_until is None

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "state": self.state,
            "held": self.hold_until is not None,
            "open_until": _iso(self.open_until),
            "hold_until": _iso(self.hold_until),
            "hold_asked_s": self.hold_asked,
            "failures": self.failures,
            "cooldown_s": self.cooldown,
        }


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class CircuitBreaker:
    """Per-key breakers over a ``CircuitStore``; keys are model strings (``provider:model``).

    A circuit opens when, within one ``window`` of seconds, there were at least
    ``failure_threshold`` provider failures and they were at least ``failure_rate`` of the
    calls: a burst of errors from a healthy provider under load does not open it. A server's
    rate-limit delay is kept too (``hold``), so that every caller -- in this process or, with
    a shared store, in any worker -- waits it out or fails over instead of collecting 429s;
    one response holds a model for everyone for at most ``max_hold`` seconds (the call that
    got it still honours the whole delay). A healthy model costs one store read per call and
    no write.
    """

    def __init__(
        self,
        store: CircuitStore | None = None,
        *,
        failure_threshold: int = 5,
        failure_rate: float = 0.5,
        window: float = 60.0,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        probe_timeout: float = 60.0,
        share_rate_limits: bool = True,
        max_hold: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store: CircuitStore = store if store is not None else MemoryCircuitStore()
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.window = window
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.probe_timeout = probe_timeout
        self.share_rate_limits = share_rate_limits
        self.max_hold = max_hold
        self.clock = clock
        self._indexed: set[str] = set()
        # Read-modify-write of one process's callers in turn (threads reach the store in
        # parallel); across processes, writes stay last-writer-wins.
        self._lock = threading.RLock()

    @property
    def blocking(self) -> bool:
        """Whether reading or writing the state may block (anything but process memory):
        async callers then reach it from a worker thread."""
        return not isinstance(self.store, MemoryCircuitStore)

    # ---------------------------------------------------------------- state

    def _load(self, key: str) -> _State:
        raw = self.store.get(PREFIX + key)
        if not raw:
            return _State()
        try:
            return _State(**json.loads(raw))
        except (ValueError, TypeError):
            return _State()

    def _save(self, key: str, st: _State) -> None:
        self.store.set(PREFIX + key, json.dumps(asdict(st)))
        if key not in self._indexed:
            self._index(key)

    def _index(self, key: str) -> None:
        """Add ``key`` to the list of models that ``models()`` reports. Last-writer-wins like
        the rest: the write is read back and retried, so a concurrent add is not lost."""
        for _ in range(3):
            known = self.models()
            if key in known:
                break
            self.store.set(INDEX_KEY, json.dumps(sorted({*known, key})))
        self._indexed.add(key)

    def models(self) -> list[str]:
        """Every model this breaker's store has held state for."""
        raw = self.store.get(INDEX_KEY)
        try:
            found = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [str(k) for k in found] if isinstance(found, list) else []

    def state(self, key: str) -> str:
        """``closed``, ``open`` or ``half_open``, as a reader sees it now."""
        st = self._load(key)
        if st.state == "open" and self.clock() >= st.open_until:
            return "half_open"
        return st.state

    def status(self, key: str) -> CircuitStatus:
        st = self._load(key)
        now = self.clock()
        state = self.state(key)
        return CircuitStatus(
            model=key,
            state=state,
            open_until=st.open_until if state == "open" else None,
            hold_until=st.hold_until if st.hold_until > now else None,
            hold_asked=(st.hold_asked or None) if st.hold_until > now else None,
            failures=st.failures,
            cooldown=st.cooldown,
        )

    def statuses(self) -> list[CircuitStatus]:
        """The status of every model the store knows, open and held ones included."""
        return [self.status(key) for key in self.models()]

    def clear(self, key: str) -> CircuitStatus:
        """Close the circuit of ``key`` and drop its hold; returns what it was before."""
        with self._lock:
            before = self.status(key)
            self._save(key, _State())
            return before

    def clear_hint(self, key: str) -> str:
        if isinstance(self.store, KVCircuitStore):
            return f"`tether llm clear {key}` (with -s STORE_URL) clears it"
        return f"breaker.clear({key!r}) clears it"

    # ---------------------------------------------------------------- calls

    def before_call(self, key: str) -> Permit:
        st = self._load(key)
        if st.state == "closed" and st.hold_until <= self.clock():
            return Permit(True)  # a healthy model: one read, no lock, no write
        with self._lock:
            st = self._load(key)
            now = self.clock()
            if st.hold_until > now:
                return Permit(
                    False, retry_at=st.hold_until, reason="hold", detail=self._held(key, st, now)
                )
            if st.state == "closed":
                return Permit(True)
            if st.state == "open" and now < st.open_until:
                detail = f"the circuit of {key} is open until {_iso(st.open_until)}"
                return Permit(False, retry_at=st.open_until, reason="open", detail=detail)
            if st.state == "half_open" and now < st.probe_until:
                detail = f"another caller is probing the half-open circuit of {key}"
                return Permit(False, retry_at=st.probe_until, reason="probing", detail=detail)
            # The cooldown is over (or the last probe never reported): this caller probes.
            st.state = "half_open"
            st.probe_until = now + self.probe_timeout
            self._save(key, st)
            return Permit(True, probe=True)

    def _held(self, key: str, st: _State, now: float) -> str:
        asked = st.hold_asked or st.hold_until - now
        return (
            f"{key} is held until {_iso(st.hold_until)} ({st.hold_until - now:.0f}s from now) "
            f"because a 429 asked for {asked:g}s of quiet; every caller of the breaker waits "
            f"it out, for at most max_hold={self.max_hold:g}s after one response; "
            + self.clear_hint(key)
        )

    def hold(self, key: str, seconds: float) -> None:
        """The server asked for ``seconds`` of quiet (a 429 with a delay): every caller of
        this breaker waits it out or fails over, for at most ``max_hold`` seconds. Not a
        failure: the circuit stays closed. With ``share_rate_limits=False`` only the call
        that got the 429 waits."""
        with self._lock:
            if not self.share_rate_limits or self.max_hold <= 0:
                return
            st = self._load(key)
            until = self.clock() + min(seconds, self.max_hold)
            if until > st.hold_until:
                st.hold_until, st.hold_asked = until, seconds
                self._save(key, st)

    def record_success(self, key: str) -> None:
        with self._lock:
            st = self._load(key)
            if st.state != "closed":
                self._save(key, _State(hold_until=st.hold_until, hold_asked=st.hold_asked))
            elif st.failures and self.clock() - st.window_start < self.window:
                st.successes += 1
                self._save(key, st)

    def record_failure(self, key: str, *, probe: bool = False) -> bool:
        """Count a provider failure; returns True when this failure opened the circuit.

        While the circuit is open or half-open, only the probe's failure counts (it reopens
        the circuit for longer); calls let through without a fallback do not extend it."""
        with self._lock:
            st = self._load(key)
            now = self.clock()
            if st.state == "open":
                return False
            if st.state == "half_open":
                if not probe:
                    return False
                st.cooldown = min(self.max_cooldown, max(st.cooldown, self.cooldown) * 2)
                st.state, st.open_until = "open", now + st.cooldown
                self._save(key, st)
                return True
            if now - st.window_start >= self.window:
                st.window_start, st.failures, st.successes = now, 0, 0
            st.failures += 1
            rate = st.failures / (st.failures + st.successes)
            opened = st.failures >= self.failure_threshold and rate >= self.failure_rate
            if opened:
                st.state, st.open_until, st.cooldown = "open", now + self.cooldown, self.cooldown
                st.failures = st.successes = 0
            self._save(key, st)
            return opened

    def release_probe(self, key: str) -> None:
        """A probe ended without telling anything about the provider (e.g. a 4xx): let the
        next caller probe at once."""
        with self._lock:
            st = self._load(key)
            if st.state == "half_open":
                st.probe_until = 0.0
                self._save(key, st)


_default = CircuitBreaker()


def default_breaker() -> CircuitBreaker:
    """The process-wide breaker used when a call passes no ``circuit=``."""
    return _default

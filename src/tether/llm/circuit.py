"""Circuit breakers per provider and model, with state shareable across workers.

State lives behind ``CircuitStore``, two methods on strings. ``MemoryCircuitStore`` keeps it
in the process; ``KVCircuitStore`` adapts any object with ``kv_get(key)`` / ``kv_set(key,
value)`` -- the durable store implements those, so every worker sharing a store shares the
breakers. Writes are last-writer-wins: two workers that trip or probe at the same moment
cost at most one extra request, never a lost call.

    closed ──(in one window: >= failure_threshold failures, >= failure_rate of calls)──> open
    open ──(cooldown elapsed)──> half-open: one caller probes, the others wait or fail over
    half-open ──(probe succeeds)──> closed
    half-open ──(probe fails)──> open, cooldown doubled (up to max_cooldown)

Only failures that say the provider is unhealthy count (overloaded, 5xx, timeouts, a 429
without a delay); a 429 with a server delay is rate limiting, kept as a shared ``hold``
instead, and a 4xx is the caller's fault.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol


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


@dataclass(frozen=True)
class Permit:
    """The answer to ``before_call``: go ahead now, or not before ``retry_at`` (wall clock)."""

    allowed: bool
    retry_at: float = 0.0
    probe: bool = False


class CircuitBreaker:
    """Per-key breakers over a ``CircuitStore``; keys are model strings (``provider:model``).

    A circuit opens when, within one ``window`` of seconds, there were at least
    ``failure_threshold`` provider failures and they were at least ``failure_rate`` of the
    calls: a burst of errors from a healthy provider under load does not open it. A server's
    rate-limit delay is kept too (``hold``), so that every caller -- in this process or, with
    a shared store, in any worker -- waits it out or fails over instead of collecting 429s.
    A healthy model costs one store read per call and no write.
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
        self.clock = clock

    def _key(self, key: str) -> str:
        return f"tether.llm.circuit:{key}"

    def _load(self, key: str) -> _State:
        raw = self.store.get(self._key(key))
        if not raw:
            return _State()
        try:
            return _State(**json.loads(raw))
        except (ValueError, TypeError):
            return _State()

    def _save(self, key: str, st: _State) -> None:
        self.store.set(self._key(key), json.dumps(asdict(st)))

    def state(self, key: str) -> str:
        """``closed``, ``open`` or ``half_open``, as a reader sees it now."""
        st = self._load(key)
        if st.state == "open" and self.clock() >= st.open_until:
            return "half_open"
        return st.state

    def before_call(self, key: str) -> Permit:
        st = self._load(key)
        now = self.clock()
        if st.hold_until > now:
            return Permit(False, retry_at=st.hold_until)
        if st.state == "closed":
            return Permit(True)
        if st.state == "open" and now < st.open_until:
            return Permit(False, retry_at=st.open_until)
        if st.state == "half_open" and now < st.probe_until:
            return Permit(False, retry_at=st.probe_until)
        # The cooldown is over (or the last probe never reported): this caller probes.
        st.state = "half_open"
        st.probe_until = now + self.probe_timeout
        self._save(key, st)
        return Permit(True, probe=True)

    def hold(self, key: str, seconds: float) -> None:
        """The server asked for ``seconds`` of quiet (a 429 with a delay): every caller of
        this breaker waits it out or fails over. Not a failure: the circuit stays closed.
        With ``share_rate_limits=False`` only the call that got the 429 waits."""
        if not self.share_rate_limits:
            return
        st = self._load(key)
        until = self.clock() + seconds
        if until > st.hold_until:
            st.hold_until = until
            self._save(key, st)

    def record_success(self, key: str) -> None:
        st = self._load(key)
        if st.state != "closed":
            self._save(key, _State(hold_until=st.hold_until))
        elif st.failures and self.clock() - st.window_start < self.window:
            st.successes += 1
            self._save(key, st)

    def record_failure(self, key: str) -> bool:
        """Count a provider failure; returns True when this failure opened the circuit."""
        st = self._load(key)
        now = self.clock()
        if st.state == "half_open":
            st.cooldown = min(self.max_cooldown, max(st.cooldown, self.cooldown) * 2)
            st.state, st.open_until = "open", now + st.cooldown
            self._save(key, st)
            return True
        if st.state == "open":
            return False
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
        st = self._load(key)
        if st.state == "half_open":
            st.probe_until = 0.0
            self._save(key, st)


_default = CircuitBreaker()


def default_breaker() -> CircuitBreaker:
    """The process-wide breaker used when a call passes no ``circuit=``."""
    return _default

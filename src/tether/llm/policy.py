"""The retry / fail-over policy of one logical call: which model to try next, and when.

One ``CallState`` lives for one call. It walks the chain ``[model, *fallbacks]``:

- a failure classified ``retry`` puts its route to sleep for the server's delay (or an
  exponential backoff with jitter) -- and if another route is ready meanwhile, that one is
  tried at once instead of sleeping;
- a delay longer than what is left of the deadline, a per-day quota, an exhausted billing
  quota or an auth failure retire the route at once (auth and quota retire every route of
  the same provider and endpoint: they share the key);
- after ``max_attempts`` retriable failures in a row (or two timeouts) a route is set
  aside and the next one is tried; when every route is set aside or retired, the set-aside
  ones get another round, each after its backoff, until the deadline: the deadline, not a
  count, is what ends a call that only transient failures stand in the way of;
- context too long retires every route whose context window is not larger;
- an open circuit sends the call to another route; a call with no other route left goes
  through it at its own retry pace (``Permit.bypass``), so the circuit never fails a call
  that its retries would have saved; a shared rate-limit hold is waited out (within the
  deadline) or failed over.

Re-asks for invalid output are counted apart from all of this.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tether.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    CostLimitExceeded,
    LLMCallFailed,
    LLMDeadlineExceeded,
)
from tether.llm.circuit import CircuitBreaker, Permit
from tether.llm.classify import CIRCUIT_KINDS, Action, Classification, ErrorKind
from tether.llm.prices import PriceTable
from tether.llm.providers import Provider
from tether.llm.types import AttemptRecord, Usage

T = TypeVar("T")

_BACKOFF_BASE = {ErrorKind.OVERLOADED: 1.0, ErrorKind.RATE_LIMITED: 1.0}
_BACKOFF_CAP = 8.0


class Budget:
    """A spend limit shared by several calls (for example every call of one run)."""

    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd

    def exhausted(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd


@dataclass
class Route:
    spec: str
    provider: Provider
    context_window: int | None
    failures: int = 0  # retriable failures in this call: the backoff's exponent
    round_failures: int = 0  # ... since the route was last (re)started
    timeouts: int = 0  # ... of them timeouts
    rested: bool = False  # set aside after max_attempts; back once no other route is left
    ready_at: float = 0.0
    circuit_until: float = 0.0  # an open circuit keeps the route aside while others remain
    blocked: str | None = None  # why the breaker last held the route back, in words
    dead: str | None = None
    waiting_on: str = "backoff"  # why ready_at is in the future (AttemptRecord.waits)

    @property
    def key(self) -> str:
        return self.spec


@dataclass
class Policy:
    deadline: float = 120.0
    timeout: float = 60.0
    max_attempts: int = 3
    max_reasks: int = 2
    max_cost_usd: float | None = None
    budget: Budget | None = None
    breaker: CircuitBreaker | None = None
    prices: PriceTable | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] | None = None
    on_attempt: Callable[[AttemptRecord], None] | None = None
    rng: random.Random = field(default_factory=random.Random)


class CallState:
    def __init__(self, routes: list[Route], policy: Policy) -> None:
        self.routes = routes
        self.p = policy
        self.started = policy.clock()
        self.deadline_at = self.started + policy.deadline
        self.attempts: list[AttemptRecord] = []
        self.last: Classification | None = None
        self.reasks = 0
        self.slept = 0.0
        self.waits: dict[str, float] = {}  # since the last attempt, by reason

    def restart_clock(self) -> None:
        """Start the deadline now (a stream's call starts when it is first iterated)."""
        self.started = self.p.clock()
        self.deadline_at = self.started + self.p.deadline

    # ---------------------------------------------------------------- bookkeeping

    @property
    def spent(self) -> float:
        return sum(a.cost_usd or 0.0 for a in self.attempts)

    def remaining(self) -> float:
        return self.deadline_at - self.p.clock()

    def record(
        self,
        route: Route,
        started: float,
        *,
        ok: bool,
        usage: Usage | None = None,
        cls: Classification | None = None,
        action: str | None = None,
        error_type: str | None = None,
        circuit_opened: bool = False,
    ) -> AttemptRecord:
        usage = usage or Usage()
        cost = None
        if self.p.prices is not None:
            cost = self.p.prices.cost(route.provider.price_provider, route.provider.model, usage)
        rec = AttemptRecord(
            number=len(self.attempts) + 1,
            model=route.spec,
            provider=route.provider.provider,
            started_at=time.time() - (self.p.clock() - started),
            duration_s=round(self.p.clock() - started, 6),
            ok=ok,
            error_class=cls.kind.value if cls else None,
            error_type=error_type,
            error_message=cls.summary() if cls else None,
            status=cls.status if cls else None,
            action=action,
            retry_after_s=cls.retry_after if cls else None,
            usage=usage,
            cost_usd=cost,
            waits={k: round(v, 6) for k, v in self.waits.items()},
            fallback=route is not self.routes[0],
            circuit_opened=circuit_opened,
        )
        self.waits = {}
        self.attempts.append(rec)
        if self.p.budget is not None and cost:
            self.p.budget.spent_usd += cost
        if self.p.on_attempt is not None:
            self.p.on_attempt(rec)
        return rec

    def fail(self, cls: Classification | None, reason: str) -> LLMCallFailed:
        kind = cls.kind if cls else None
        text = f"LLM call failed: {reason}"
        if cls is not None:
            text += f" (last error: {cls.summary()})"
        text += f"; {len(self.attempts)} attempt(s) over {self.p.clock() - self.started:.1f}s"
        if kind is ErrorKind.CONTEXT_LENGTH_EXCEEDED:
            return ContextLengthExceeded(
                text + ". Shorten the messages or add a larger-context model to fallbacks",
                kind=kind,
                attempts=self.attempts,
            )
        if kind is ErrorKind.CONTENT_FILTERED:
            return ContentFiltered(text, kind=kind, attempts=self.attempts)
        return LLMCallFailed(text, kind=kind, attempts=self.attempts)

    # ---------------------------------------------------------------- choosing

    async def next_route(self) -> tuple[Route, Permit]:
        """The route to try now, after any wait; raises when nothing is left to try."""
        while True:
            now = self.p.clock()
            if now >= self.deadline_at:
                raise LLMDeadlineExceeded(
                    self.fail(self.last, f"the deadline of {self.p.deadline:g}s ran out").args[0],
                    kind=self.last.kind if self.last else None,
                    attempts=self.attempts,
                )
            if self.p.max_cost_usd is not None and self.spent >= self.p.max_cost_usd:
                raise CostLimitExceeded(
                    f"LLM call stopped: max_cost_usd={self.p.max_cost_usd} reached "
                    f"(spent ${self.spent:.6f} over {len(self.attempts)} attempt(s))",
                    kind=self.last.kind if self.last else None,
                    attempts=self.attempts,
                )
            if self.p.budget is not None and self.p.budget.exhausted():
                raise CostLimitExceeded(
                    f"LLM call stopped: the run's budget of ${self.p.budget.limit_usd} is spent",
                    kind=self.last.kind if self.last else None,
                    attempts=self.attempts,
                )
            live = [r for r in self.routes if r.dead is None and not r.rested]
            if not live:
                rested = [r for r in self.routes if r.dead is None]
                if not rested:
                    dead = ", ".join(f"{r.spec}: {r.dead}" for r in self.routes)
                    raise self.fail(self.last, f"every model in the chain was tried ({dead})")
                # Every route failed only transiently: start another round, each route
                # after its backoff, for as long as the deadline allows.
                for r in rested:
                    r.rested, r.round_failures, r.timeouts = False, 0, 0
                continue
            chosen = await self._admit(live, now)
            if chosen is not None:
                return chosen
            now = self.p.clock()
            wake, why = min(self._wake(r, live, now) for r in live)
            if wake <= now:
                continue  # a hold just moved a route: choose again
            if wake >= self.deadline_at:
                why = f"the next try would start after the {self.p.deadline:g}s deadline"
                blocks = [r.blocked for r in live if r.blocked]
                if blocks:
                    why += ": " + "; ".join(blocks)
                raise LLMDeadlineExceeded(
                    self.fail(self.last, why).args[0],
                    kind=self.last.kind if self.last else None,
                    attempts=self.attempts,
                )
            await self._sleep(wake - now)
            self.waits[why] = self.waits.get(why, 0.0) + self.p.clock() - now

    async def _admit(self, live: list[Route], now: float) -> tuple[Route, Permit] | None:
        """The first route of the chain that may go now, or None. An open circuit keeps a
        route aside only while another route is not held back by its own circuit."""
        breaker = self.p.breaker
        for route in live:
            if route.ready_at > now:
                continue
            if route.circuit_until > now and _alternative(route, live, now):
                continue
            if breaker is None:
                return route, Permit(True)
            permit = await self._ask(functools.partial(breaker.before_call, route.key))
            if permit.allowed:
                route.blocked = None
                return route, permit
            # The breaker keeps its own clock (wall time, shared by workers).
            wait = max(0.0, permit.retry_at - breaker.clock())
            route.blocked = permit.detail
            if permit.reason == "hold":  # the server's delay: wait it out or fail over
                route.ready_at, route.waiting_on = now + wait, "hold"
                continue
            if _alternative(route, live, now):
                route.circuit_until = now + wait
                continue
            # No other model is left: the circuit exists to send load elsewhere, and there
            # is nowhere else. The call keeps its own pace (backoff, server delays); of
            # several open circuits, the first in the chain's order is tried.
            first = next(r for r in live if r.ready_at <= now)
            return first, Permit(True, bypass=True)
        return None

    @staticmethod
    def _wake(route: Route, live: list[Route], now: float) -> tuple[float, str]:
        """When the route may go next, and why it must wait until then."""
        if route.circuit_until > now and _alternative(route, live, now):
            if route.circuit_until >= route.ready_at:
                return route.circuit_until, "circuit"
            return route.ready_at, route.waiting_on
        return route.ready_at, route.waiting_on

    async def _ask(self, fn: Callable[[], T]) -> T:
        """Call the breaker: on a worker thread when its state lives in a store that can
        block (a PostgreSQL round trip, a locked SQLite file), never on the event loop."""
        breaker = self.p.breaker
        if breaker is not None and breaker.blocking:
            return await asyncio.to_thread(fn)
        return fn()

    async def _sleep(self, seconds: float) -> None:
        self.slept += seconds
        if self.p.sleep is not None:
            await self.p.sleep(seconds)
        else:
            await asyncio.sleep(seconds)

    def attempt_timeout(self) -> float:
        return max(0.001, min(self.p.timeout, self.remaining()))

    # ---------------------------------------------------------------- outcomes

    async def success(self, route: Route, permit: Permit) -> None:
        if self.p.breaker is not None:
            breaker = self.p.breaker
            await self._ask(lambda: breaker.record_success(route.key))

    async def failed(
        self,
        route: Route,
        permit: Permit,
        started: float,
        cls: Classification,
        *,
        usage: Usage | None = None,
        exc: BaseException | None = None,
        raise_on_fail: bool = True,
    ) -> str:
        """Record a failed attempt and act on it; raises when the call must stop now."""
        breaker = self.p.breaker
        opened = False
        if breaker is not None:
            opened = await self._ask(lambda: self._tell(breaker, route, permit, cls))
        action = self.failure(route, cls)
        error_type = type(exc.__cause__ or exc).__name__ if exc is not None else None
        self.record(
            route,
            started,
            ok=False,
            usage=usage,
            cls=cls,
            action=action,
            error_type=error_type,
            circuit_opened=opened,
        )
        if action == Action.FAIL.value and raise_on_fail:
            raise self.fail(cls, "the error is not retriable") from exc
        return action

    @staticmethod
    def _tell(breaker: CircuitBreaker, route: Route, permit: Permit, cls: Classification) -> bool:
        """What a failure says about the provider, for every caller of the breaker; True
        when it opened the circuit."""
        unhealthy = cls.kind in CIRCUIT_KINDS or (
            cls.kind is ErrorKind.RATE_LIMITED and cls.retry_after is None
        )
        if unhealthy:
            return breaker.record_failure(route.key, probe=permit.probe)
        if cls.kind is ErrorKind.RATE_LIMITED and cls.retry_after:
            breaker.hold(route.key, cls.retry_after)
        elif permit.probe:
            breaker.release_probe(route.key)
        return False

    def failure(self, route: Route, cls: Classification) -> str:
        """Act on a failed attempt; returns the action taken (for the attempt record)."""
        self.last = cls
        now = self.p.clock()
        action = cls.action
        if action is Action.FAIL or action is Action.REASK:
            return action.value
        if action is Action.FAILOVER:
            shared = cls.kind in (ErrorKind.AUTH, ErrorKind.QUOTA_EXHAUSTED) and not cls.per_day
            for r in self.routes:
                if r is route or (shared and _same_account(r, route)):
                    r.dead = cls.kind.value
            return action.value
        if action is Action.COMPACT_OR_UPGRADE:
            window = cls.context_window or route.context_window
            needed = cls.requested_tokens
            for r in self.routes:
                too_small = r.context_window is not None and (
                    (window is not None and r.context_window <= window)
                    or (needed is not None and r.context_window < needed)
                )
                if r is route or too_small:
                    r.dead = cls.kind.value
            return action.value
        # RETRY
        route.failures += 1
        route.round_failures += 1
        if cls.kind is ErrorKind.TIMEOUT:
            route.timeouts += 1
        delay = cls.retry_after
        route.waiting_on = "backoff" if delay is None else "retry_after"
        if delay is None:
            base = _BACKOFF_BASE.get(cls.kind, 0.5)
            delay = min(_BACKOFF_CAP, base * 2 ** (route.failures - 1))
            delay *= self.p.rng.uniform(0.75, 1.0)
        route.ready_at = now + delay
        if now + delay >= self.deadline_at:
            route.dead = (
                f"{cls.kind.value}, its next try in {delay:.3g}s would start after the "
                f"{self.p.deadline:g}s deadline"
            )
            return Action.FAILOVER.value
        if route.round_failures >= self.p.max_attempts or route.timeouts >= 2:
            route.rested = True
            return Action.FAILOVER.value
        route.ready_at = now + delay
        return action.value


def _alternative(route: Route, live: list[Route], now: float) -> bool:
    """Whether another live route is not held back by an open circuit of its own."""
    return any(r is not route and r.circuit_until <= now for r in live)


def _same_account(a: Route, b: Route) -> bool:
    pa, pb = a.provider, b.provider
    return (
        pa.provider == pb.provider
        and getattr(pa, "base_url", None) == getattr(pb, "base_url", None)
        and getattr(pa, "api_key", None) == getattr(pb, "api_key", None)
    )


__all__ = ["Budget", "CallState", "Policy", "Route"]

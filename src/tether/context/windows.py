"""The user-facing context windows: ``th.context(key, ...)`` and ``ctx.context(key, ...)``.

A window is the pure core (``build``, ``plan_compaction``, ``summary_item``) over a
``StoreWindowLog``: the same key reopens the same log in any process. ``ContextWindow``
(from ``th.context`` and ``SyncContext.context``) has blocking methods and ``a``-prefixed
coroutine twins; ``AsyncContextWindow`` (from ``Context.context``) has coroutines of the
same names.

Inside a durable function every write is keyed by (run, write number) — the n-th write of
this run to this window — so a replay or a resumed run returns the items it wrote before
instead of appending them again. Window writes are not steps (no ``Run.steps`` entry, no
effect on ``check-replay``, which writes nothing). A replayed body also reads the window
as it was at that point: the items this run wrote later are left out of its builds, so a
replay builds and compacts exactly as the first pass did. Compaction is a durable step
(``context.compact``) whose summary is keyed by its range; ``ctx.step.llm(...,
context=window)`` appends the reply in the transaction of the step's checkpoint.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tether.context.budget import resolve_budget
from tether.context.build import build
from tether.context.compaction import plan_compaction, summary_item, summary_text
from tether.context.errors import ContextBudgetError, UnknownContextWindow
from tether.context.items import message_item, pin_item, reply_items, to_message
from tether.context.records import (
    BuiltContext,
    Compaction,
    ContextItem,
    ContextReport,
    Hit,
    StructuredSummary,
    SummaryRequest,
)
from tether.context.retrieval import Retriever, window_retriever
from tether.context.settings import DEFAULT_SETTINGS, ContextSettings
from tether.context.stored import StoreWindowLog
from tether.context.tokens import DEFAULT_COUNTER, TokenCounter
from tether.context.window import check_pin_fits
from tether.context.window import recall as recall_in
from tether.errors import ConfigurationError
from tether.llm.types import Message, to_tools

if TYPE_CHECKING:
    from tether.durable.execution import RunExecution
    from tether.store.executor import Tx

#: a context-length error from the provider rebuilds the window into this share of its budget
HARDER = 0.6

SummarizerSpec = str | Callable[[SummaryRequest], Awaitable[Any]] | None


class WindowState:
    """What one open window knows: its log, its settings, the items read so far (read
    incrementally), and, inside a durable function, the run's write numbering."""

    def __init__(
        self,
        store: Any,
        key: str,
        *,
        model: str | None,
        budget: int | None,
        system: str | None,
        subject: str | None,
        memory: bool,
        summarizer: SummarizerSpec,
        extract: bool,
        settings: ContextSettings | None = None,
        counter: TokenCounter | None = None,
        ex: RunExecution | None = None,
        observer: Any = None,
        embedder: str | None = None,
    ) -> None:
        if summarizer is not None and not (isinstance(summarizer, str) or callable(summarizer)):
            raise ConfigurationError(
                f"summarizer= takes a model name or an async callable, got {summarizer!r}"
            )
        if system is not None and not isinstance(system, str):
            raise ConfigurationError(f"system= takes a string, got {type(system).__name__}")
        if extract and not memory:
            raise ConfigurationError(
                "extract=True writes to the subject's memory: pass memory=True"
            )
        if memory and subject is None:
            raise ConfigurationError(
                "memory=True reads the subject's long-term memory: pass subject='user:42'"
            )
        self.counter = counter or model_counter(model)
        self.given_budget = budget
        self.budget = resolve_budget(model=model, budget=budget, counter=self.counter)
        head = self.counter.count_messages([Message(role="system", content=system or "")])
        if system and head > self.budget:
            raise ContextBudgetError(
                f"the budget of {self.budget} tokens cannot hold the system prompt "
                f"({head} tokens): raise budget= to at least {head} or shorten system=",
                budget=self.budget,
                needed=head,
            )
        self.log = StoreWindowLog(store, key, subject=subject, model=model)
        self.store = self.log.store
        self.key = key
        self.model = model
        self.system = system
        self.subject = subject
        self.memory = memory
        self.extract = extract
        self.summarizer = summarizer
        self.settings = settings or DEFAULT_SETTINGS
        self.ex = ex
        self.observer = observer
        self.embedder = embedder
        self.memory_retriever = MemoryRetriever(self.open_memory()) if memory else None
        self._extract_writes: Any = None
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._items: list[ContextItem] = []
        self._origins: dict[int, int] | None = None

    # ------------------------------------------------------------ durable keying

    def _position(self) -> int:
        ex = self.ex
        return 0 if ex is None else ex.window_writes.get(self.key, 0)

    def next_write(self) -> tuple[str, tuple[str, int]] | None:
        """The key and origin of this run's next write to the window (None outside runs)."""
        ex = self.ex
        if ex is None:
            return None
        with ex.lock:
            n = ex.window_writes.get(self.key, 0) + 1
            ex.window_writes[self.key] = n
        return f"run:{ex.run_id}:{n}", (ex.run_id, n)

    def write(self, items: list[ContextItem]) -> list[ContextItem]:
        """Append ``items`` as one write (one write number inside a run)."""
        slot = self.next_write()
        if slot is None:
            return self.log.append(items)
        key, origin = slot
        assert self.ex is not None
        if self.ex.check_only:  # check-replay writes nothing
            return items
        keyed = [
            i
            if i.key is not None
            else i.model_copy(update={"key": key if n == 0 else f"{key}.{n}"})
            for n, i in enumerate(items)
        ]
        stored = self.log.append(keyed, [origin] * len(keyed))
        origins = self._load_origins()
        for item in stored:
            origins.setdefault(item.seq, origin[1])
        return stored

    def append_in(self, tx: Tx, items: list[ContextItem], origin: tuple[str, int] | None) -> None:
        """Append inside another transaction (a step's checkpoint)."""
        from tether.store import windows as win

        stored = win.append(
            tx,
            self.key,
            items,
            time.time(),
            subject=self.subject,
            model=self.model,
            origins=[origin] * len(items) if origin else None,
        )
        if origin is not None:
            origins = self._origins
            if origins is not None:
                for item in stored:
                    origins.setdefault(item.seq, origin[1])

    def _load_origins(self) -> dict[int, int]:
        if self._origins is None:
            assert self.ex is not None
            self._origins = self.store.window_origins(self.key, self.ex.run_id)
        return self._origins

    # ------------------------------------------------------------ reads

    def refresh(self) -> list[ContextItem]:
        """Every item (read incrementally: only what is new since the last read)."""
        with self._lock:
            after = self._items[-1].seq if self._items else 0
            generation, new = self.log.read(after)
            if self._generation is not None and generation != self._generation:
                generation, new = self.log.read(0)
                self._items = []
            self._generation = generation
            if new:
                self._items = [*self._items, *new]
            return self._items

    def visible(self) -> list[ContextItem]:
        """The items a build sees: inside a run, not those this run wrote later (a replay
        sees the window as it was at this point of the first pass)."""
        items = self.refresh()
        if self.ex is None:
            return items
        origins, now = self._load_origins(), self._position()
        if not origins or max(origins.values()) <= now:
            return items
        return [i for i in items if origins.get(i.seq, 0) <= now]

    def open_memory(self, writes: Any = None) -> Any:
        """The subject's long-term memory (``tether.memory``), blocking methods."""
        from tether.memory import open_memory

        assert self.subject is not None
        clock = self.ex.clock if self.ex is not None else None
        return open_memory(
            self.store, self.subject, embedder=self.embedder, clock=clock, writes=writes
        )

    def retriever(self, items: list[ContextItem]) -> Retriever | list[Retriever] | None:
        if self.memory_retriever is None:
            return None
        return [window_retriever(items, self), self.memory_retriever]

    def budget_for(self, model: str | None, max_tokens: int | None, tools: Sequence[Any]) -> int:
        """The budget of a call: the window's ``budget=`` when given, else the call's
        model's context window less the reply (``max_tokens``) and the tool definitions."""
        if self.given_budget is not None or model is None:
            return self.budget
        try:
            return resolve_budget(
                model=model, max_tokens=max_tokens, tools=list(tools), counter=self.counter
            )
        except UnknownContextWindow:
            return self.budget

    def build(self, query: str | None = None, budget: int | None = None) -> BuiltContext:
        items = self.visible()
        built = build(
            items,
            budget=budget or self.budget,
            system=self.system,
            counter=self.counter,
            query=query,
            retriever=self.retriever(items),
            settings=self.settings,
            cache=self,
        )
        self.observe(built.report)
        return built

    def observe(self, report: ContextReport) -> None:
        observer = self.observer
        if observer is not None and hasattr(observer, "context_report"):
            observer.context_report(self.key, report)

    # ------------------------------------------------------------ compaction

    def plan(self, force: bool) -> Any:
        return plan_compaction(
            self.visible(),
            budget=self.budget,
            system=self.system,
            counter=self.counter,
            settings=self.settings,
            model=self.summarizer if isinstance(self.summarizer, str) else None,
            force=force,
        )

    def finish(self, plan: Any, result: Any) -> Compaction:
        """Validate the summary and append it (one write: the swap is atomic)."""
        item = summary_item(plan, result, counter=self.counter, settings=self.settings)
        stored = self.write([item])[0]
        done = Compaction(
            turns_folded=int(stored.meta.get("folded", len(plan.folded))),
            tokens_before=int(stored.meta["tokens_before"]),
            tokens_after=int(stored.meta["tokens_after"]),
            summary_seq=stored.seq,
        )
        observer = self.observer
        if observer is not None and hasattr(observer, "context_compacted"):
            observer.context_compacted(self.key, done)
        return done

    def summarize_fn(self, request: SummaryRequest) -> Callable[[], Awaitable[str]]:
        """The summarizer as an async callable returning the summary text (a durable
        step's callable inside runs)."""
        spec = self.summarizer
        if spec is None:
            raise ConfigurationError(
                "compact() needs a summarizer: open the window with summarizer=<model or "
                "async callable>"
            )

        async def by_callable() -> str:
            assert callable(spec)
            return summary_text(await spec(request))

        if callable(spec):
            return by_callable
        model = spec
        circuit = self.ex.engine.breaker() if self.ex is not None else None

        async def by_model() -> str:
            from tether.llm import acomplete

            options: dict[str, Any] = {"max_tokens": request.max_tokens}
            if circuit is not None:
                options["circuit"] = circuit
            resp = await acomplete(model, request.messages, output=StructuredSummary, **options)
            return summary_text(resp.parsed if resp.parsed is not None else resp.text)

        return by_model

    # ------------------------------------------------------------ writes

    def add_items(self, value: Any, content: Any, kwargs: dict[str, Any]) -> list[ContextItem]:
        message = to_message(value, content, **kwargs)
        return self.write([message_item(message, settings=self.settings)])

    def pin_items(self, name: str, text: str) -> list[ContextItem]:
        item = pin_item(name, text)
        check_pin_fits(self.log, item, system=self.system, counter=self.counter, budget=self.budget)
        return self.write([item])

    def add_messages(self, messages: Sequence[Message]) -> list[ContextItem]:
        """Several messages as one write (a reply, its tool calls and their results land
        together, and take one write number inside a run)."""
        checked = [to_message(m) for m in messages]
        return self.write([message_item(m, settings=self.settings) for m in checked])

    def options(self) -> dict[str, Any]:
        """The options this window was opened with (what ``ctx.context`` takes)."""
        return {
            "model": self.model,
            "budget": self.given_budget,
            "system": self.system,
            "subject": self.subject,
            "memory": self.memory,
            "summarizer": self.summarizer,
            "extract": self.extract,
        }

    def clear(self) -> int:
        if self.ex is not None and self.ex.check_only:
            return 0
        n = self.log.clear()
        with self._lock:
            self._items, self._generation = [], None
        self._origins = None
        return n

    def recall(self, handle: str) -> str:
        return recall_in(self.log, handle)


def model_counter(model: str | None) -> TokenCounter:
    """The model's own token counter (``tether.llm.tokens``: its tokenizer where one is
    available offline, else a calibrated estimate), or the default estimate."""
    if model is None:
        return DEFAULT_COUNTER
    try:
        from tether.llm.tokens import token_counter

        counter: TokenCounter = token_counter(model)
        return counter
    except Exception:  # an unknown prefix: the window still works on the estimate
        return DEFAULT_COUNTER


def _run_blocking(coro: Awaitable[Any]) -> Any:
    from tether.llm.sync import _runner

    async def wrap() -> Any:
        return await coro

    return _runner.run(wrap())


class _WindowBase:
    def __init__(self, state: WindowState, steps: Any = None) -> None:
        self._s = state
        self._steps = steps

    @property
    def key(self) -> str:
        return self._s.key

    @property
    def subject(self) -> str | None:
        return self._s.subject

    @property
    def budget(self) -> int:
        return self._s.budget

    @property
    def model(self) -> str | None:
        return self._s.model

    @property
    def system(self) -> str | None:
        return self._s.system

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._s.key!r} budget={self._s.budget}>"

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a store call off the event loop (the engine's I/O path inside runs)."""
        ex = self._s.ex
        if ex is None or not isinstance(self, AsyncContextWindow):
            return await asyncio.to_thread(fn, *args)
        # Always on the engine's I/O threads (never "inline, else again on a thread"):
        # a write takes its write number once.
        return await asyncio.get_running_loop().run_in_executor(ex.engine.io_pool, fn, *args)

    async def _summarize(self, fn: Callable[[], Awaitable[str]]) -> str:
        """The summarizer's answer: inside runs a durable step (``context.compact``,
        replayed from its checkpoint), else a direct call."""
        if self._steps is None:
            return await fn()
        from tether.durable.retry import NO_RETRY

        steps = self._steps.options(retries=NO_RETRY)
        if isinstance(self, AsyncContextWindow):
            return str(await steps.run("context.compact", fn))
        return str(await asyncio.to_thread(steps.run, "context.compact", fn))

    async def _flow_build(self, query: str | None) -> BuiltContext:
        """``build``, compacting first at the hard trigger when a summarizer is set; a
        failed or refused summary keeps the old one and the turns."""
        s = self._s
        built: BuiltContext = await self._io(s.build, query)
        if built.report.trigger != "hard" or s.summarizer is None:
            return built
        try:
            done = await self._flow_compact(force=False)
        except Exception as exc:
            return _with_error(built, exc)
        if done is None:
            return built
        return _compacted(await self._io(s.build, query))

    async def _flow_compact(self, force: bool) -> Compaction | None:
        s = self._s
        if s.summarizer is None:
            s.summarize_fn(SummaryRequest(key="", messages=[], max_tokens=0))  # raises
        plan = await self._io(s.plan, force)
        if plan is None:
            return None
        text = await self._summarize(s.summarize_fn(plan.request))
        done: Compaction = await self._io(s.finish, plan, text)
        return done


class ContextWindow(_WindowBase):
    """A context window with blocking methods and ``a``-prefixed coroutine twins
    (``th.context(...)`` anywhere; ``ctx.context(...)`` in plain durable functions)."""

    # ------------------------------------------------------------ blocking
    def add(
        self,
        value: Any,
        content: str | None = None,
        *,
        tool_calls: Any = None,
        tool_call_id: str | None = None,
        name: str | None = None,
    ) -> ContextItem:
        """``add(role, content, ...)`` or ``add(Message | dict)``: the appended item."""
        kwargs = {"tool_calls": tool_calls, "tool_call_id": tool_call_id, "name": name}
        return self._s.add_items(value, content, kwargs)[0]

    def pin(self, name: str, text: str) -> ContextItem:
        """Keep ``text`` verbatim in every build under ``name`` (replacing a pin of that
        name); refused, with nothing written, when it would not fit the budget."""
        return self._s.pin_items(name, text)[0]

    def unpin(self, name: str) -> ContextItem:
        return self._s.write([pin_item(name, None)])[0]

    def items(self) -> list[ContextItem]:
        """Every item of the log, in order."""
        return list(self._s.refresh())

    def recall(self, handle: str) -> str:
        """The full text behind a handle a build shows (``art_…`` or ``item:<seq>``)."""
        return self._s.recall(handle)

    def clear(self) -> int:
        """Delete every item for good; the key can be used again. Returns how many."""
        return self._s.clear()

    def build(self, query: str | None = None) -> BuiltContext:
        """The messages that fit the budget and the report; compacts first at the hard
        trigger when a summarizer is set."""
        s = self._s
        if s.summarizer is None:  # nothing to await: no loop hop
            return s.build(query)
        built: BuiltContext = _run_blocking(self._flow_build(query))
        return built

    def compact(self) -> Compaction | None:
        """Fold now whatever the triggers; None when nothing can fold. A summarizer
        failure leaves the window as it was and raises."""
        done: Compaction | None = _run_blocking(self._flow_compact(force=True))
        return done

    # ------------------------------------------------------------ async twins
    async def aadd(self, value: Any, content: str | None = None, **kwargs: Any) -> ContextItem:
        return await asyncio.to_thread(lambda: self.add(value, content, **kwargs))

    async def apin(self, name: str, text: str) -> ContextItem:
        return await asyncio.to_thread(self.pin, name, text)

    async def aunpin(self, name: str) -> ContextItem:
        return await asyncio.to_thread(self.unpin, name)

    async def aitems(self) -> list[ContextItem]:
        return await asyncio.to_thread(self.items)

    async def arecall(self, handle: str) -> str:
        return await asyncio.to_thread(self.recall, handle)

    async def aclear(self) -> int:
        return await asyncio.to_thread(self.clear)

    async def abuild(self, query: str | None = None) -> BuiltContext:
        return await self._flow_build(query)

    async def acompact(self) -> Compaction | None:
        return await self._flow_compact(force=True)


class AsyncContextWindow(_WindowBase):
    """The window of an ``async def`` durable function (``ctx.context(...)``): its methods
    are coroutines; store calls run off the event loop."""

    async def add(
        self,
        value: Any,
        content: str | None = None,
        *,
        tool_calls: Any = None,
        tool_call_id: str | None = None,
        name: str | None = None,
    ) -> ContextItem:
        kwargs = {"tool_calls": tool_calls, "tool_call_id": tool_call_id, "name": name}
        items = await self._io(self._s.add_items, value, content, kwargs)
        return items[0]  # type: ignore[no-any-return]

    async def pin(self, name: str, text: str) -> ContextItem:
        return (await self._io(self._s.pin_items, name, text))[0]  # type: ignore[no-any-return]

    async def unpin(self, name: str) -> ContextItem:
        return (await self._io(self._s.write, [pin_item(name, None)]))[0]  # type: ignore[no-any-return]

    async def items(self) -> list[ContextItem]:
        return list(await self._io(self._s.refresh))

    async def recall(self, handle: str) -> str:
        return str(await self._io(self._s.recall, handle))

    async def clear(self) -> int:
        return int(await self._io(self._s.clear))

    async def build(self, query: str | None = None) -> BuiltContext:
        """The messages that fit the budget and the report; compacts first at the hard
        trigger when a summarizer is set (a durable step)."""
        return await self._flow_build(query)

    async def compact(self) -> Compaction | None:
        """Fold now whatever the triggers (a durable step); None when nothing can fold."""
        return await self._flow_compact(force=True)


# ---------------------------------------------------------------- integrations (TetherAgent)


def in_run(window: Any, ctx: Any) -> Any:
    """``window`` with its writes keyed by the run of ``ctx``: a window opened outside the
    run (``th.context``) is opened again through ``ctx.context`` with the same key and
    options; a ``ctx.context`` window is returned as is."""
    s = window_state(window)
    if s.ex is not None:
        return window
    return ctx.context(s.key, **s.options())


async def abuild_window(window: Any, query: str | None) -> BuiltContext:
    """``build(query)`` of either kind of window, as a coroutine (compacting first at the
    hard trigger when the window has a summarizer: a durable step inside runs)."""
    built: BuiltContext = await window_base(window)._flow_build(query)
    return built


async def aadd_messages(window: Any, messages: Sequence[Message]) -> list[ContextItem]:
    """``messages`` appended to either kind of window as one write."""
    items: list[ContextItem] = await window_base(window)._io(
        window_state(window).add_messages, messages
    )
    return items


async def acall_ids(window: Any) -> set[str]:
    """The tool call ids of the window's items, as a build at this point sees them."""
    items: list[ContextItem] = await window_base(window)._io(window_state(window).visible)
    return {c.id for i in items if i.message is not None for c in i.message.tool_calls}


def window_base(window: Any) -> _WindowBase:
    window_state(window)
    assert isinstance(window, _WindowBase)
    return window


def _with_error(built: BuiltContext, exc: BaseException) -> BuiltContext:
    report = built.report.model_copy(update={"compaction_error": f"{type(exc).__name__}: {exc}"})
    return built.model_copy(update={"report": report})


def _compacted(built: BuiltContext) -> BuiltContext:
    return built.model_copy(update={"report": built.report.model_copy(update={"compacted": True})})


# ---------------------------------------------------------------- ctx.step.llm(context=)


def window_state(window: Any) -> WindowState:
    state = getattr(window, "_s", None)
    if not isinstance(state, WindowState):
        raise ConfigurationError(
            f"context= takes a context window (ctx.context(...) or th.context(...)), got "
            f"{type(window).__name__}"
        )
    return state


async def acompact_before_call(window: Any) -> None:
    """Before ``ctx.step.llm(context=window)``: compact at the hard trigger when the window
    has a summarizer (a durable step; the same decision on every replay)."""
    if window_state(window).summarizer is not None:
        await window._flow_build(None)


def compact_before_call(window: Any) -> None:
    if window_state(window).summarizer is not None:
        _run_blocking(window._flow_build(None))


def llm_with_context(
    window: Any,
    ex: RunExecution,
    model: Any,
    messages: Any,
    output: Any,
    options: dict[str, Any],
) -> tuple[Callable[[], Awaitable[Any]], Callable[[Any, str], Callable[[Tx], None]]]:
    """The step callable of ``ctx.step.llm(..., context=window)`` and the hook that appends
    its reply in the checkpoint's transaction. The reply's write number is taken now,
    replayed or not, so numbering stays the same on every pass."""
    from tether.llm import LLMResponse, acomplete

    s = window_state(window)
    if s.ex is None or s.ex is not ex:
        raise ConfigurationError(
            "ctx.step.llm(context=...) takes a window of this run: open it with "
            "ctx.context(key, ...) inside the function"
        )
    if messages is not None:
        raise ConfigurationError(
            "ctx.step.llm takes messages= or context=, not both: add the messages to the "
            "window (window.add) and the call builds them"
        )
    slot = s.next_write()
    assert slot is not None
    reply_key, origin = slot
    tools = to_tools(options.get("tools")) if options.get("tools") else []
    max_tokens = options.get("max_tokens")
    reports: dict[str, ContextReport] = {}
    current: list[str] = []

    def build_for(spec: str, harder: bool) -> list[Message]:
        budget = s.budget_for(spec, max_tokens, tools)
        if harder:
            budget = max(1, int(budget * HARDER))
        built = s.build(None, budget)
        reports[spec] = built.report
        return list(built.messages)

    async def prepare(spec: str) -> list[Message]:
        current[:] = [spec]
        return await asyncio.to_thread(build_for, spec, False)

    async def compact(_: list[Message]) -> list[Message]:
        return await asyncio.to_thread(build_for, current[0] if current else str(model), True)

    options = dict(options)
    options.setdefault("circuit", ex.engine.breaker())
    observer = ex.engine.observer
    if observer is not None:
        options["on_attempt"] = observer.llm_hook([], options, options.get("on_attempt"))

    async def call() -> Any:
        return await acomplete(
            model, [], output=output, prepare=prepare, compact=compact, **options
        )

    call.__annotations__["return"] = LLMResponse[output] if output is not None else LLMResponse

    def after(value: Any, step_id: str) -> Callable[[Tx], None]:
        used = reports.get(getattr(value, "model", "")) or (
            next(iter(reports.values())) if reports else None
        )
        items = reply_items(
            getattr(value, "text", "") or "",
            list(getattr(value, "tool_calls", []) or []),
            key=reply_key,
            settings=s.settings,
        )
        meta: dict[str, Any] = {
            "run_id": ex.run_id,
            "step": step_id,
            "model": getattr(value, "model", None),
        }
        if used is not None:
            meta["report"] = used.model_dump(mode="json")
            if getattr(value, "model", None) == s.model:
                learn_usage(s.counter, used.tokens, getattr(value, "attempts", []))
        items = [items[0].model_copy(update={"meta": meta})]
        if ex.check_only:
            return lambda tx: None
        return lambda tx: s.append_in(tx, items, origin)

    return call, after


def learn_usage(counter: Any, estimated: int, attempts: Sequence[Any]) -> None:
    """Correct the window's token estimate by what the provider billed for the prompt it
    built: the input tokens of the attempt that answered (``TokenCounter.observe``; a
    counter with nothing to learn, such as an exact tokenizer's, has no ``observe``)."""
    observe = getattr(counter, "observe", None)
    answered = next((a for a in reversed(attempts) if getattr(a, "ok", False)), None)
    if observe is None or answered is None:
        return
    observe(estimated, int(answered.usage.input_tokens))


class MemoryRetriever:
    """A subject's long-term memory (``Memory.search``: full text, embeddings and recency
    fused) as the core's ``Retriever``: hits are ``memory:<id>``."""

    MAX_K = 20

    def __init__(self, memory: Any) -> None:
        self.memory = memory

    def search(self, query: str, k: int) -> list[Hit]:
        found = self.memory.search(query, k=max(1, min(k, self.MAX_K)))
        return [Hit(id=f"memory:{h.id}", text=h.text, score=float(h.score)) for h in found]


# ---------------------------------------------------------------- fact extraction

EXTRACT_PROMPT = (
    "You keep a user's long-term memory. From the new messages, list the durable facts about "
    "the user (preferences, identifiers, circumstances, decisions), one short sentence each. "
    "When a fact updates a known fact, give that fact's id as supersedes. Give the message "
    "number each fact comes from as item. Skip greetings, questions and anything temporary. "
    'Answer with JSON: {"facts": [{"text": "...", "item": 12, "supersedes": null}]}'
)


class ExtractedFact(BaseModel):
    text: str
    item: int | None = None
    supersedes: str | None = None


class ExtractedFacts(BaseModel):
    facts: list[ExtractedFact] = []


def _extract_kv(key: str) -> str:
    return f"tether:context-extract:{key}"


def extraction_step(s: WindowState, model: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """The callable of the durable step ``context.extract``: the facts in the user messages
    not extracted yet (none when the subject's preferences turn memory off)."""
    from tether.llm import acomplete

    ex = s.ex
    assert ex is not None
    circuit = ex.engine.breaker()

    def gather() -> tuple[bool, int, list[ContextItem], list[Any]]:
        prefs = s.store.subject_preferences(s.subject) or {}
        if prefs.get("memory") is False:
            return False, 0, [], []
        last = int(s.store.kv_get(_extract_kv(s.key)) or 0)
        new = [
            i
            for i in s.refresh()
            if i.seq > last and i.message is not None and i.message.role == "user"
        ]
        known = s.open_memory().list()[-50:] if new else []
        return True, last, new, known

    async def extract() -> dict[str, Any]:
        allowed, last, new, known = await asyncio.to_thread(gather)
        if not allowed:
            return {"skipped": "the subject's preferences turn memory off", "facts": []}
        if not new:
            return {"facts": [], "through": last}
        lines = "\n".join(f"- [{m.id}] {m.text}" for m in known) or "(none)"
        said = "\n".join(f"#{i.seq}: {i.content}" for i in new)
        messages = [
            Message(role="system", content=EXTRACT_PROMPT),
            Message(role="user", content=f"Known facts:\n{lines}\n\nNew messages:\n{said}"),
        ]
        resp = await acomplete(
            model, messages, output=ExtractedFacts, max_tokens=400, circuit=circuit
        )
        facts = resp.parsed.facts if resp.parsed is not None else []
        seqs = {i.seq for i in new}
        return {
            "facts": [
                {**f.model_dump(), "item": f.item if f.item in seqs else new[0].seq}
                for f in facts
                if f.text.strip()
            ],
            "known": [m.id for m in known],
            "through": max(seqs),
        }

    return extract


def apply_facts(s: WindowState, found: dict[str, Any]) -> None:
    """Write the extracted facts to the subject's memory with their provenance (window,
    item, run); a fact that updates a known one supersedes it. Keyed writes: a replay
    applies none twice."""
    from tether.errors import MemoryDisabled, MemoryNotFound
    from tether.memory import WriteKeys

    ex = s.ex
    assert ex is not None
    if s._extract_writes is None:
        s._extract_writes = WriteKeys(f"{ex.run_id}:ctx:{s.key}", check_only=ex.check_only)
    memory = s.open_memory(s._extract_writes)
    known = set(found.get("known", []))
    try:
        for fact in found.get("facts", []):
            source = f"window:{s.key}#item:{fact['item']}#run:{ex.run_id}"
            old = fact.get("supersedes")
            if old in known:
                try:
                    memory.update(old, fact["text"])
                    continue
                except MemoryNotFound:
                    pass
            memory.add(fact["text"], source=source, tags=["extracted"])
    except MemoryDisabled:
        return
    through = found.get("through")
    if through is None or ex.check_only:
        return
    if int(s.store.kv_get(_extract_kv(s.key)) or 0) < int(through):  # only forward
        s.store.kv_set(_extract_kv(s.key), str(int(through)))


async def aextract_after_call(window: Any, model: Any) -> None:
    """After ``ctx.step.llm(context=window)`` with ``extract=True``: the durable step
    ``context.extract`` (the window's summarizer model when it names one, else the call's)
    and the memory writes it found."""
    s = window_state(window)
    if not s.extract:
        return
    from tether.durable.retry import NO_RETRY

    chosen = s.summarizer if isinstance(s.summarizer, str) else model
    steps = window._steps.options(retries=NO_RETRY)
    fn = extraction_step(s, chosen)
    if isinstance(window, AsyncContextWindow):
        found = await steps.run("context.extract", fn)
        await window._io(apply_facts, s, found)
    else:
        found = await asyncio.to_thread(steps.run, "context.extract", fn)
        await asyncio.to_thread(apply_facts, s, found)


def extract_after_call(window: Any, model: Any) -> None:
    if window_state(window).extract:
        _run_blocking(aextract_after_call(window, model))


OPTIONS = ("model", "budget", "system", "subject", "memory", "summarizer", "extract")


def open_state(
    store: Any,
    key: str,
    options: dict[str, Any],
    *,
    ex: Any = None,
    engine: Any = None,
    embedder: str | None = None,
) -> WindowState:
    """A window's state from the options of ``th.context`` / ``ctx.context``."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"context() got unknown option(s) {unknown}; it takes {', '.join(OPTIONS)}"
        )
    return WindowState(
        store,
        key,
        model=options.get("model"),
        budget=options.get("budget"),
        system=options.get("system"),
        subject=options.get("subject"),
        memory=bool(options.get("memory", False)),
        summarizer=options.get("summarizer"),
        extract=bool(options.get("extract", False)),
        ex=ex,
        observer=getattr(engine, "observer", None),
        embedder=getattr(engine, "embedder", embedder),
    )

"""``WindowCore``: one window's operations over any ``WindowLog`` — the pure part that the
harness's ``ContextWindow`` wraps with write keys, durable steps and the store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.context.budget import resolve_budget
from tether.context.build import build
from tether.context.compaction import Summarizer, abuild, acompact
from tether.context.errors import ArtifactNotFound, ContextBudgetError, InvalidContextItem
from tether.context.items import message_item, pin_item, to_message
from tether.context.log import WindowLog
from tether.context.records import BuiltContext, Compaction, ContextItem
from tether.context.render import pins_block, system_text
from tether.context.retrieval import Retriever
from tether.context.settings import DEFAULT_SETTINGS, ContextSettings
from tether.context.tokens import DEFAULT_COUNTER, TokenCounter
from tether.errors import ConfigurationError
from tether.llm.types import Message, Tool

#: the tool a model calls to read back a stubbed or cleared text (``recall(handle)``)
RECALL_TOOL = Tool(
    name="recall",
    description=(
        "Read the full text of an earlier tool result or message that the context shows "
        "shortened or cleared; the placeholder names its handle."
    ),
    parameters={
        "type": "object",
        "properties": {"handle": {"type": "string", "description": "the handle, e.g. art_…"}},
        "required": ["handle"],
    },
)


def recall(log: WindowLog, handle: str) -> str:
    """The full text behind a handle: an artifact's (``art_…``) or an item's (``item:<seq>``)."""
    found = log.artifact(handle) if handle.startswith("art_") else None
    if found is None and handle.startswith("item:") and handle[5:].isdigit():
        seq = int(handle[5:])
        found = next((i for i in log.items(after=seq - 1) if i.seq == seq), None)
    if found is None:
        raise ArtifactNotFound(
            f"no artifact or item {handle!r} in this window; the handles a build shows are in "
            "report.stubbed and report.cleared, and in each placeholder's text"
        )
    return found.content


def check_pin_fits(
    log: WindowLog, item: ContextItem, *, system: str | None, counter: TokenCounter, budget: int
) -> None:
    """Raise ``ContextBudgetError`` when pinning ``item`` (replacing a pin of its name)
    would make the system prompt and the pins larger than ``budget``."""
    name = item.name or ""
    pins = {n: p for n, p in log.pins().items() if n != name}
    pins[name] = item
    text_now = system_text(system, pins_block(list(pins.values())))
    needed = counter.count_messages([Message(role="system", content=text_now)])
    if needed > budget:
        raise ContextBudgetError(
            f"pinning {name!r} would make the system prompt and pins {needed} tokens, over "
            f"the budget of {budget}: shorten the pin, unpin another, or raise budget=",
            budget=budget,
            needed=needed,
        )


class WindowCore:
    """A context window over ``log``. ``budget`` or ``model`` is required."""

    def __init__(
        self,
        log: WindowLog,
        *,
        budget: int | None = None,
        model: str | None = None,
        system: str | None = None,
        counter: TokenCounter | None = None,
        settings: ContextSettings | None = None,
        retriever: Retriever | Sequence[Retriever] | None = None,
        summarizer: Summarizer | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Tool] = (),
    ) -> None:
        self.log = log
        self.counter = counter or DEFAULT_COUNTER
        self.budget = resolve_budget(
            model=model, budget=budget, max_tokens=max_tokens, tools=tools, counter=self.counter
        )
        self.model = model
        self.system = system
        self.settings = settings or DEFAULT_SETTINGS
        self.retriever = retriever
        self.summarizer = summarizer

    # ------------------------------------------------------------ writes

    def add(
        self,
        value: Any,
        content: str | None = None,
        *,
        tool_calls: Any = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        key: str | None = None,
    ) -> ContextItem:
        """``add(role, content, ...)`` or ``add(Message)``: the appended item."""
        message = to_message(
            value, content, tool_calls=tool_calls, tool_call_id=tool_call_id, name=name
        )
        return self.log.append([message_item(message, key=key, settings=self.settings)])[0]

    def add_many(
        self, messages: Sequence[Message | dict[str, Any]], *, keys: Sequence[str] | None = None
    ) -> list[ContextItem]:
        """Several messages in one atomic append (a reply and its tool results, say)."""
        if keys is not None and len(keys) != len(messages):
            raise InvalidContextItem(f"{len(messages)} messages but {len(keys)} keys")
        items = [
            message_item(to_message(m), key=keys[i] if keys else None, settings=self.settings)
            for i, m in enumerate(messages)
        ]
        return self.log.append(items)

    def pin(self, name: str, text: str, *, key: str | None = None) -> ContextItem:
        """Pin ``text`` under ``name`` (replacing a pin of that name); refused, with nothing
        written, when the system prompt and the pins would no longer fit the budget."""
        item = pin_item(name, text, key=key)
        check_pin_fits(self.log, item, system=self.system, counter=self.counter, budget=self.budget)
        return self.log.append([item])[0]

    def unpin(self, name: str, *, key: str | None = None) -> ContextItem:
        return self.log.append([pin_item(name, None, key=key)])[0]

    def clear(self) -> int:
        return self.log.clear()

    # ------------------------------------------------------------ reads

    def items(self) -> list[ContextItem]:
        return self.log.items()

    def recall(self, handle: str) -> str:
        return recall(self.log, handle)

    def build(self, query: str | None = None) -> BuiltContext:
        """Fit the window into the budget; never compacts (see ``abuild``)."""
        return build(
            self.log,
            budget=self.budget,
            system=self.system,
            counter=self.counter,
            query=query,
            retriever=self.retriever,
            settings=self.settings,
        )

    async def abuild(self, query: str | None = None) -> BuiltContext:
        """``build``, compacting first at the hard trigger when a summarizer is set."""
        return await abuild(
            self.log,
            budget=self.budget,
            system=self.system,
            counter=self.counter,
            query=query,
            retriever=list(self.retriever)
            if isinstance(self.retriever, Sequence)
            else self.retriever,
            settings=self.settings,
            summarizer=self.summarizer,
            model=self.model,
        )

    async def acompact(self) -> Compaction | None:
        """Fold now whatever the triggers; None when nothing can fold."""
        if self.summarizer is None:
            raise ConfigurationError(
                "compact() needs a summarizer: open the window with summarizer=<model or "
                "async callable>"
            )
        return await acompact(
            self.log,
            budget=self.budget,
            summarizer=self.summarizer,
            system=self.system,
            counter=self.counter,
            settings=self.settings,
            model=self.model,
            force=True,
        )

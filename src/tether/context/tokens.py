"""Token counting as the pipeline sees it: any object with ``count(text)`` and
``count_messages(messages)``.

``tether.llm.tokens.TokenCounter`` (the model's tokenizer where one is available offline,
else a calibrated estimate) fits this protocol; ``ApproxCounter`` (four characters a token)
is the default when nothing better is given. The pipeline takes the count of a list of
messages as additive — ``count_messages([])`` (the reply priming) plus each message's own
count — and checks the final list with one ``count_messages`` call, so a counter that is
not exactly additive is still never over budget.
"""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tether.llm.types import Message

#: tokens every message costs beyond its content (role and separators), as in OpenAI's
#: published rule of thumb; and the reply priming of a request
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3


@runtime_checkable
class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def count_messages(self, messages: Sequence[Message]) -> int: ...


class ApproxCounter:
    """About four characters a token (``ceil(len / chars_per_token)``), plus a fixed
    overhead per message and per tool call."""

    def __init__(self, chars_per_token: float = 4.0) -> None:
        if chars_per_token <= 0:
            raise ValueError(f"chars_per_token must be positive, got {chars_per_token}")
        self.chars_per_token = chars_per_token

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token) if text else 0

    def count_message(self, m: Message) -> int:
        n = MESSAGE_OVERHEAD + self.count(m.content)
        for call in m.tool_calls:
            n += MESSAGE_OVERHEAD + self.count(call.id) + self.count(call.name)
            n += self.count(json.dumps(call.arguments, ensure_ascii=False))
        if m.tool_call_id:
            n += self.count(m.tool_call_id)
        if m.name:
            n += 1 + self.count(m.name)
        return n

    def count_messages(self, messages: Sequence[Message]) -> int:
        return REPLY_PRIMING + sum(self.count_message(m) for m in messages)


class MessageCosts:
    """Per-message counts from any counter, cached by the message object (kept alive by the
    cache, so an id is never reused while cached). ``costs_for`` keeps one per log, so a
    window's messages are counted once, not at every build."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.base = counter.count_messages([])
        self._cache: dict[int, tuple[Message, int]] = {}

    def of(self, m: Message) -> int:
        hit = self._cache.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1]
        n = self.counter.count_messages([m]) - self.base
        self._cache[id(m)] = (m, n)
        return n

    def total(self, messages: Sequence[Message]) -> int:
        return self.counter.count_messages(messages)

    def bound(self, n: int) -> None:
        """Forget everything when the cache holds far more than ``n`` live messages (a log
        that returns new objects at every read)."""
        if len(self._cache) > 4 * n + 1000:
            self._cache.clear()


_by_owner: weakref.WeakKeyDictionary[object, MessageCosts] = weakref.WeakKeyDictionary()


def costs_for(counter: TokenCounter, owner: object | None) -> MessageCosts:
    """The cached ``MessageCosts`` of ``owner`` (a log) for ``counter``, or a fresh one."""
    if owner is None:
        return MessageCosts(counter)
    try:
        cached = _by_owner.get(owner)
    except TypeError:  # an owner that cannot be weakly referenced
        return MessageCosts(counter)
    if cached is None or cached.counter is not counter:
        cached = _by_owner[owner] = MessageCosts(counter)
    return cached


DEFAULT_COUNTER = ApproxCounter()

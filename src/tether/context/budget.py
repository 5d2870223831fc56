"""A window's budget: given, or the model's context window less the reply and a margin."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tether.context.errors import ContextBudgetError, UnknownContextWindow
from tether.context.tokens import DEFAULT_COUNTER, TokenCounter
from tether.llm.prices import PriceTable, default_prices
from tether.llm.types import Tool

#: the share of the context window left free for the counter's error
SAFETY_MARGIN = 0.05
#: the reply's room when the call gives no max_tokens: this share of the window, at most
DEFAULT_OUTPUT_SHARE = 0.10
DEFAULT_OUTPUT_MAX = 4096


def context_window(model: str, prices: PriceTable | None = None) -> int | None:
    """The model's context window from the price table (``provider:model``), or None."""
    provider, _, name = model.partition(":")
    if not name:
        provider, name = "", model
    table = prices or default_prices()
    if provider == "openai-compatible":  # a server of open models: known by the model's name
        name = name.split("#", 1)[1] if "#" in name else name
        return table.context_window(provider, name) or table.context_window("openai", name)
    return table.context_window(provider, name)


def resolve_budget(
    *,
    model: str | None = None,
    budget: int | None = None,
    max_tokens: int | None = None,
    tools: Sequence[Tool] = (),
    counter: TokenCounter | None = None,
    prices: PriceTable | None = None,
) -> int:
    """``budget`` as given, else the model's window minus ``max_tokens`` (or a default reply
    room), the tool definitions' tokens and a 5% margin."""
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise ContextBudgetError(
                f"budget must be a positive number of tokens, got {budget!r}",
                budget=0,
                needed=1,
            )
        return budget
    if model is None:
        raise UnknownContextWindow(
            "a context window needs model= (its budget comes from the model's context window) "
            "or budget= (a number of tokens)"
        )
    window = context_window(model, prices)
    if window is None:
        raise UnknownContextWindow(
            f"the context window of {model!r} is not known: pass budget= (the tokens the "
            "messages may take), or declare it with tether.llm.set_prices("
            f'{{"{model}": {{"context_window": 128000}}}})'
        )
    reply = (
        max_tokens
        if max_tokens is not None
        else min(DEFAULT_OUTPUT_MAX, int(window * DEFAULT_OUTPUT_SHARE))
    )
    counter = counter or DEFAULT_COUNTER
    tool_tokens = sum(counter.count(json.dumps(t.model_dump(mode="json"))) for t in tools)
    result = int(window * (1 - SAFETY_MARGIN)) - reply - tool_tokens
    if result <= 0:
        raise ContextBudgetError(
            f"{model!r} has a {window}-token window: after the reply ({reply} tokens), the "
            f"tools ({tool_tokens} tokens) and the 5% margin nothing is left for the messages; "
            "lower max_tokens or pass fewer tools",
            budget=result,
            needed=1,
        )
    return result

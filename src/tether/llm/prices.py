"""Prices and context windows, kept as data (``prices.json``) and overridable.

Order of precedence: ``set_prices()`` entries, then the file named by ``TETHER_LLM_PRICES``,
then the bundled table. A model is looked up as ``provider:model``, then ``model``, then the
longest listed prefix (so ``gpt-4.1-mini-2025-04-14`` is priced as ``gpt-4.1-mini``).

A local model's context window is not a price: it is the ``n_ctx`` llama.cpp runs the model
with (``tether.llm.providers.llamacpp.MODELS``), and the table reports that number, so a
budget computed from it always fits what the model accepts.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

from pydantic import BaseModel

from tether.errors import ConfigurationError
from tether.llm.providers.llamacpp import MODELS as LOCAL_MODELS
from tether.llm.types import Usage


class ModelInfo(BaseModel):
    """USD per million tokens; ``cached_input`` and ``cache_write`` default to ``input``.
    ``context_window`` and ``max_output_tokens`` are in tokens (``tether.llm.context_window``)."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None

    def cost(self, usage: Usage) -> float:
        cached = usage.cached_input_tokens
        written = usage.cache_write_tokens
        fresh = max(0, usage.input_tokens - cached - written)
        cached_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        total = (
            fresh * self.input
            + cached * cached_price
            + written * write_price
            + usage.output_tokens * self.output
        )
        return round(total / 1_000_000, 10)


class PriceTable:
    """A lookup from model string to ``ModelInfo``."""

    def __init__(self, entries: dict[str, Any] | None = None) -> None:
        self._entries: dict[str, ModelInfo] = {}
        self.update(entries or {})

    def update(self, entries: dict[str, Any]) -> None:
        for key, value in entries.items():
            if key.startswith("_"):
                continue
            info = value if isinstance(value, ModelInfo) else ModelInfo.model_validate(value)
            name = key.removeprefix("local:")
            window = info.context_window
            if key.startswith("local:") and name in LOCAL_MODELS and window is not None:
                n_ctx = LOCAL_MODELS[name].n_ctx
                if window != n_ctx:
                    raise ConfigurationError(
                        f"{key} runs with a context window of {n_ctx} tokens (the n_ctx "
                        f"llama.cpp loads it with); the price table cannot say {window}. "
                        "Leave context_window out of local entries"
                    )
            self._entries[key] = info

    def lookup(self, provider: str, model: str) -> ModelInfo | None:
        info = self._lookup(provider, model)
        if provider == "local" and model in LOCAL_MODELS:
            n_ctx = LOCAL_MODELS[model].n_ctx
            return (info or ModelInfo()).model_copy(update={"context_window": n_ctx})
        return info

    def _lookup(self, provider: str, model: str) -> ModelInfo | None:
        for key in (f"{provider}:{model}", model):
            if key in self._entries:
                return self._entries[key]
        best: tuple[int, ModelInfo] | None = None
        for key, info in self._entries.items():
            bare = key.split(":", 1)[1] if key.startswith(f"{provider}:") else key
            if ":" in bare and not key.startswith(f"{provider}:"):
                continue
            if model.startswith(bare) and (best is None or len(bare) > best[0]):
                best = (len(bare), info)
        return best[1] if best else None

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        info = self.lookup(provider, model)
        return None if info is None else info.cost(usage)

    def context_window(self, provider: str, model: str) -> int | None:
        info = self.lookup(provider, model)
        return None if info is None else info.context_window


def _load_default() -> PriceTable:
    data = json.loads(resources.files("tether.llm").joinpath("prices.json").read_text("utf-8"))
    table = PriceTable(data["models"])
    path = os.environ.get("TETHER_LLM_PRICES")
    if path:
        with open(path, encoding="utf-8") as f:
            extra = json.load(f)
        table.update(extra.get("models", extra))
    return table


_default: PriceTable | None = None


def default_prices() -> PriceTable:
    global _default
    if _default is None:
        _default = _load_default()
    return _default


def set_prices(entries: dict[str, Any]) -> None:
    """Add or replace entries of the process-wide price table, e.g.
    ``set_prices({"openai:my-finetune": {"input": 3.0, "output": 12.0}})``."""
    default_prices().update(entries)

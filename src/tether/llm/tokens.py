"""How many tokens a text or a conversation takes for a model, and how many fit.

``count_tokens(model, text_or_messages)`` uses the model's own tokenizer when one runs
offline here (see ``tether.llm.tokenizers``), else an estimate; either way the count is
multiplied by a ratio learnt from the usage the provider reported (``TokenCounter.observe``),
kept in memory per model and process. ``context_window(model)`` and
``max_output_tokens(model)`` read the price table (``prices.json``, ``set_prices``): one
source of truth for the call loop and for context windows.

Messages cost more than their text. What each provider adds (``Framing``):

    provider               per message  per name  reply  per tool call  tools
    openai, -responses,    3            1         3      name + JSON    each tool's JSON + 8,
    openai-compatible                                    arguments + 4  12 once
    anthropic              3            1         0      idem           each tool's JSON + 8,
                                                                        346 once (its tool-use
                                                                        system prompt)
    google                 0            0         0      idem           each tool's JSON + 8
    local (llama.cpp)      exact: the GGUF's chat template is rendered and tokenised
                           the way llama-cpp-python does it (the base model: its prompt)

OpenAI's figures are those of its cookbook for chat models; Google's own local counter
counts only the text. The rest is approximate, and ``observe`` corrects the whole count.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tether.errors import ConfigurationError
from tether.llm.prices import ModelInfo, PriceTable, default_prices
from tether.llm.providers import split_model
from tether.llm.tokenizers import LlamaVocab, Tokenizer, tokenizer_for
from tether.llm.types import Message, Tool, to_messages, to_tools


@dataclass(frozen=True)
class Framing:
    """Tokens a provider adds around messages and tool definitions (see the module doc)."""

    per_message: int = 3
    per_name: int = 1
    reply: int = 3
    per_tool_call: int = 4
    per_tool: int = 8
    tools: int = 12


FRAMING = {
    "openai": Framing(),
    "openai-responses": Framing(),
    "openai-compatible": Framing(),
    "anthropic": Framing(reply=0, tools=346),
    "google": Framing(per_message=0, per_name=0, reply=0, tools=0),
    "local": Framing(),
}

#: Starting ratio of reported to estimated tokens, before any observation. Claude's
#: tokenizer is reported to give 15-30% more tokens than o200k for the same text.
PRIORS = {"anthropic": 1.2}
#: Weight of the prior, in tokens: a few small observations cannot swing the ratio.
PRIOR_TOKENS = 2000.0
#: Each observation keeps this share of the history, so the ratio follows a model change.
DECAY = 0.9
RATIO_BOUNDS = (0.5, 2.5)


class TokenCounter:
    """Counts tokens for one model: ``count(text)``, ``count_messages(messages, tools=)``,
    ``observe(estimated, reported)``. Get one with ``token_counter(model)``."""

    def __init__(self, model: str, tokenizer: Tokenizer, framing: Framing, prior: float = 1.0):
        self.model = model
        self.tokenizer = tokenizer
        self.framing = framing
        self._lock = threading.Lock()
        self._reported = PRIOR_TOKENS * prior
        self._estimated = PRIOR_TOKENS
        self._ratio = prior
        self.observations = 0

    @property
    def exact(self) -> bool:
        """True when the text is counted with the model's own vocabulary."""
        return self.tokenizer.exact

    @property
    def source(self) -> str:
        """The tokenizer used: "o200k_base", "llama.cpp:smollm2-135m", "estimate", ..."""
        return self.tokenizer.name

    @property
    def ratio(self) -> float:
        """Reported / counted tokens, learnt by ``observe`` (1.0 until then, but for priors)."""
        return self._ratio

    def load(self) -> None:
        """Load the tokenizer now (blocking; ``aload`` from a coroutine)."""
        self.tokenizer.load()

    async def aload(self) -> None:
        if not self.tokenizer.loaded:
            await asyncio.to_thread(self.tokenizer.load)

    def _scaled(self, raw: int) -> int:
        return math.ceil(raw * self._ratio) if raw else 0

    def count(self, text: str) -> int:
        """Tokens of a text, corrected by the learnt ratio."""
        return self._scaled(self.tokenizer.count(text))

    def count_messages(self, messages: Any, tools: Sequence[Any] | None = None) -> int:
        """Tokens of a prompt: messages (anything ``complete`` accepts) and tool definitions,
        with the provider's framing, as the provider will report them in ``input_tokens``."""
        msgs = to_messages(messages)
        tool_defs = to_tools(tools)
        return self._scaled(self._raw_messages(msgs, tool_defs))

    def _raw_messages(self, msgs: list[Message], tool_defs: list[Tool]) -> int:
        f = self.framing
        total = f.reply
        for m in msgs:
            total += f.per_message + self.tokenizer.count(m.content)
            if m.name:
                total += f.per_name + self.tokenizer.count(m.name)
            for call in m.tool_calls:
                total += f.per_tool_call + self.tokenizer.count(call.name)
                total += self.tokenizer.count(json.dumps(call.arguments, ensure_ascii=False))
        if tool_defs:
            total += f.tools
            for t in tool_defs:
                total += f.per_tool + self.tokenizer.count(
                    json.dumps(t.model_dump(), ensure_ascii=False)
                )
        return total

    def observe(self, estimated: int, reported: int) -> None:
        """Learn from a provider's usage: ``estimated`` is what this counter said for a prompt
        (``count_messages``), ``reported`` the ``input_tokens`` the provider billed for it."""
        if estimated <= 0 or reported <= 0:
            return
        with self._lock:
            raw = estimated / self._ratio
            self._estimated = self._estimated * DECAY + raw
            self._reported = self._reported * DECAY + reported
            low, high = RATIO_BOUNDS
            self._ratio = min(high, max(low, self._reported / self._estimated))
            self.observations += 1

    def __repr__(self) -> str:
        return f"TokenCounter({self.model!r}, source={self.source!r}, ratio={self._ratio:.3f})"


class LlamaChatCounter(TokenCounter):
    """A llama.cpp model: the prompt is built and tokenised as the local provider does."""

    def __init__(self, model: str, vocab: LlamaVocab, instruct: bool) -> None:
        super().__init__(model, vocab, FRAMING["local"])
        self.vocab = vocab
        self.instruct = instruct

    def _raw_messages(self, msgs: list[Message], tool_defs: list[Tool]) -> int:
        if not self.instruct:  # a base model: the contents joined into one prompt
            prompt = "\n\n".join(m.content for m in msgs if m.content)
            return self.vocab.count_prompt(prompt, add_bos=True) if prompt else 1
        from llama_cpp import llama_chat_format

        from tether.llm.providers.openai_chat import chat_messages, chat_tools

        self.vocab.load()
        llm = self.vocab.llm
        eos, bos = llm.token_eos(), llm.token_bos()
        formatter: Any = llama_chat_format.Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        result = formatter(
            messages=chat_messages(msgs), tools=chat_tools(tool_defs) if tool_defs else None
        )
        return self.vocab.count_prompt(result.prompt, add_bos=not result.added_special)


# ---------------------------------------------------------------- one counter per model

_counters: dict[str, TokenCounter] = {}
_counters_lock = threading.Lock()


def token_counter(model: str) -> TokenCounter:
    """The process-wide counter of a model string (``"openai:gpt-4.1-mini"``, ...)."""
    with _counters_lock:
        counter = _counters.get(model)
        if counter is None:
            counter = _counters[model] = _make_counter(model)
        return counter


def _make_counter(model: str) -> TokenCounter:
    prefix, name = split_model(model)
    if prefix == "openai-compatible":
        name = name.rpartition("#")[2]
    tokenizer = tokenizer_for(prefix, name)
    if isinstance(tokenizer, LlamaVocab) and prefix == "local":
        from tether.llm.providers.llamacpp import MODELS

        return LlamaChatCounter(model, tokenizer, instruct=MODELS[name].chat)
    prior = 1.0 if tokenizer.exact else PRIORS.get(prefix, 1.0)
    return TokenCounter(model, tokenizer, FRAMING[prefix], prior)


def count_tokens(
    model: str, text_or_messages: str | Sequence[Any], *, tools: Sequence[Any] | None = None
) -> int:
    """Tokens of a text (a ``str``) or of a prompt (a list of messages, and ``tools``) for
    ``model``: what the provider will report as ``input_tokens`` for it.

    Blocking, and the first call for a model loads its tokenizer (0.1 to 2.5 s here); from
    a coroutine use ``acount_tokens``."""
    counter = token_counter(model)
    if isinstance(text_or_messages, str) and tools is None:
        return counter.count(text_or_messages)
    return counter.count_messages(text_or_messages, tools)  # a str with tools: one user turn


#: Texts longer than this are counted on a worker thread by ``acount_tokens``.
INLINE_CHARS = 100_000


async def acount_tokens(
    model: str, text_or_messages: str | Sequence[Any], *, tools: Sequence[Any] | None = None
) -> int:
    """``count_tokens`` for coroutines: the tokenizer loads, and a long input is counted, on
    a worker thread; a short one is counted inline (microseconds)."""
    counter = token_counter(model)
    await counter.aload()
    size = (
        len(text_or_messages)
        if isinstance(text_or_messages, str)
        else sum(len(str(m)) for m in text_or_messages)
    )
    if size > INLINE_CHARS:
        return await asyncio.to_thread(count_tokens, model, text_or_messages, tools=tools)
    return count_tokens(model, text_or_messages, tools=tools)


# ---------------------------------------------------------------- limits


def _info(model: str, prices: PriceTable | None) -> ModelInfo | None:
    prefix, name = split_model(model)
    provider = {"openai-responses": "openai"}.get(prefix, prefix)
    if prefix == "openai-compatible":
        name = name.rpartition("#")[2]
    return (prices or default_prices()).lookup(provider, name)


def _unknown(model: str, field: str) -> ConfigurationError:
    prefix, name = split_model(model)
    key = f"{prefix}:{name.rpartition('#')[2]}" if prefix == "openai-compatible" else model
    return ConfigurationError(
        f"the {field.replace('_', ' ')} of {model!r} is not in the price table; add it: "
        f"tether.llm.set_prices({{{key!r}: {{{field!r}: N}}}}) "
        "(or TETHER_LLM_PRICES=/path/to/prices.json)"
    )


def context_window(model: str, *, prices: PriceTable | None = None) -> int:
    """The tokens a model reads and writes in one call (prompt and reply together). For a
    local model, the ``n_ctx`` llama.cpp runs it with."""
    info = _info(model, prices)
    if info is None or info.context_window is None:
        raise _unknown(model, "context_window")
    return info.context_window


def max_output_tokens(model: str, *, prices: PriceTable | None = None) -> int:
    """The most tokens one reply may have: the provider's cap, or for a local model the
    ``max_tokens`` tether's llama.cpp provider uses when the call sets none."""
    info = _info(model, prices)
    if info is None or info.max_output_tokens is None:
        raise _unknown(model, "max_output_tokens")
    return info.max_output_tokens


__all__ = [
    "FRAMING",
    "Framing",
    "TokenCounter",
    "acount_tokens",
    "context_window",
    "count_tokens",
    "max_output_tokens",
    "token_counter",
]

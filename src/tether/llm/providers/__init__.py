"""Providers, found by the prefix of the model string; each SDK is imported only when used.

openai:<model>                        OpenAI Chat Completions
openai-responses:<model>              OpenAI Responses API
anthropic:<model>                     Anthropic Messages
google:<model>                        Gemini (google-genai)
openai-compatible:<base_url>#<model>  any Chat Completions server: vLLM, Ollama, llama.cpp
local:smollm2-135m | local:gemma-3-270m   llama.cpp in process
local:all-minilm-l6-v2                embeddings in process (sentence-transformers)
"""

from __future__ import annotations

from typing import Any

from tether.errors import UnknownProvider
from tether.llm.providers.base import Delta, Provider, Request, Result

__all__ = ["PREFIXES", "Delta", "Provider", "Request", "Result", "resolve", "split_model"]

PREFIXES = ("openai", "openai-responses", "anthropic", "google", "openai-compatible", "local")


def split_model(model: str) -> tuple[str, str]:
    prefix, sep, name = model.partition(":")
    if not sep or prefix not in PREFIXES or not name:
        raise UnknownProvider(
            f"model {model!r} has no known provider prefix; write one of "
            + ", ".join(f"'{p}:<model>'" for p in PREFIXES)
            + " (e.g. 'openai:gpt-4.1-mini', 'openai-compatible:http://localhost:8000/v1#llama3')"
        )
    return prefix, name


def resolve(model: str | Provider, **options: Any) -> Provider:
    """The provider for a model string (or a ``Provider`` instance, returned as is)."""
    if isinstance(model, Provider):
        return model
    prefix, name = split_model(model)
    if prefix == "openai":
        from tether.llm.providers.openai_chat import OpenAIChat

        return OpenAIChat(name, **options)
    if prefix == "openai-responses":
        from tether.llm.providers.openai_responses import OpenAIResponses

        return OpenAIResponses(name, **options)
    if prefix == "openai-compatible":
        from tether.llm.providers.openai_chat import OpenAIChat

        base_url, sep, model_name = name.rpartition("#")
        if not sep or not base_url or not model_name:
            raise UnknownProvider(
                f"{model!r}: write 'openai-compatible:<base_url>#<model>', "
                "e.g. 'openai-compatible:http://localhost:11434/v1#llama3.2'"
            )
        return OpenAIChat(model_name, base_url=base_url, compatible=True, **options)
    if prefix == "anthropic":
        from tether.llm.providers.anthropic import Anthropic

        return Anthropic(name, **options)
    if prefix == "google":
        from tether.llm.providers.gemini import Gemini

        return Gemini(name, **options)
    if name == "all-minilm-l6-v2":
        from tether.llm.providers.local_embed import LocalEmbedder

        return LocalEmbedder(name)
    from tether.llm.providers.llamacpp import LlamaCpp

    return LlamaCpp(name)

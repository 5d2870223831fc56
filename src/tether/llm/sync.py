"""Blocking versions of the calls: ``complete``, ``stream`` and ``embed``.

They run the async call on one background event loop thread owned by this module, so they
work from plain scripts, from worker threads and from inside a running event loop alike
(the caller blocks; the loop it may be running is not re-entered). SDK clients are kept
per loop, so the background loop reuses its connections across calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel

from tether.llm.call import LLMStream, acomplete, aembed, astream
from tether.llm.types import Embedding, LLMResponse, StreamChunk

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)


class _LoopThread:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="tether-llm", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "tether.llm's blocking calls cannot run on its own loop thread; await acomplete()"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


_runner = _LoopThread()


def complete(*args: Any, **kwargs: Any) -> LLMResponse[Any]:
    """Blocking ``acomplete``: same arguments, same result."""
    return _runner.run(acomplete(*args, **kwargs))


def embed(*args: Any, **kwargs: Any) -> Embedding:
    """Blocking ``aembed``."""
    return _runner.run(aembed(*args, **kwargs))


class SyncStream:
    """A blocking iterator over a stream's chunks; ``response`` is set when it is done."""

    def __init__(self, stream: LLMStream) -> None:
        self._stream = stream
        self._iter = stream.__aiter__()

    @property
    def response(self) -> LLMResponse[Any] | None:
        return self._stream.response

    @property
    def text(self) -> str:
        return self._stream.text

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __next__(self) -> StreamChunk:
        async def step() -> StreamChunk:
            return await self._iter.__anext__()

        try:
            return _runner.run(step())
        except StopAsyncIteration:
            raise StopIteration from None


def stream(*args: Any, **kwargs: Any) -> SyncStream:
    """Blocking ``astream``: ``for chunk in stream(...): print(chunk.text, end="")``."""
    return SyncStream(astream(*args, **kwargs))

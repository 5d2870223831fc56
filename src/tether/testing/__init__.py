"""Helpers for testing tether apps: a temporary store, a virtual clock, FakeLLMServer
(an OpenAI/Anthropic/Gemini-compatible HTTP server on loopback with scripted faults, in
``tether.testing.fake_server``, its wire formats in ``fake_wire``) and ``poll`` (wait for a
condition with a deadline).

from tether.testing import temporary_harness

with temporary_harness() as th:          # a fresh SQLite file, virtual clock
    @th.function()
    async def nap(ctx): await ctx.step.sleep("nap", "1h"); return "rested"
    assert th.run(nap) == "rested"        # the hour passes at once
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tether.clock import VirtualClock
from tether.harness import Harness
from tether.testing.fake_server import FakeLLMServer, RecordedRequest
from tether.testing.fake_wire import FAULT_KINDS, Fault, Reply
from tether.testing.poll import apoll, poll

__all__ = [
    "FAULT_KINDS",
    "FakeLLMServer",
    "Fault",
    "RecordedRequest",
    "Reply",
    "VirtualClock",
    "apoll",
    "poll",
    "temporary_harness",
    "temporary_store_url",
]


@contextlib.contextmanager
def temporary_store_url() -> Iterator[str]:
    """A ``sqlite:///`` URL in a new temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tether-test-"))
    try:
        yield f"sqlite:///{folder / 'tether.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def temporary_harness(*, virtual_time: bool = True, **options: Any) -> Iterator[Harness]:
    """A Harness on a temporary SQLite store; with ``virtual_time`` sleeps, timeouts and
    backoffs elapse at once (``harness.clock`` is a ``VirtualClock``)."""
    with temporary_store_url() as url:
        if virtual_time:
            options.setdefault("clock", VirtualClock())
        harness = Harness(url, **options)
        try:
            yield harness
        finally:
            harness.close()

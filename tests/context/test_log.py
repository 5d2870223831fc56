"""The window-log conformance suite on the in-memory reference log.

A store-backed log runs the same checks: parametrise ``CHECKS`` with a factory that opens
a new, empty window of that store (see tests/context/conformance.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.context.conformance import CHECKS, MakeLog
from tether.context import MemoryWindowLog, WindowLog


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("conform_"))
def test_memory_log(check: Callable[[MakeLog], None]) -> None:
    check(MemoryWindowLog)


def test_memory_log_is_a_window_log() -> None:
    assert isinstance(MemoryWindowLog(), WindowLog)

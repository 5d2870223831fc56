"""Choosing which candidate runs a keyed claim takes (shared by every backend)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any


def _plain(kind: str, key: str) -> Hashable:
    return key


def pick(
    rows: Sequence[Sequence[Any]],
    used: dict[Any, int],
    limit: int,
    slot: Callable[[str, str], Hashable] = _plain,
) -> list[str]:
    """Up to ``limit`` run ids from candidate ``rows`` (id, status, ckey1, climit1, ckey2,
    climit2, throttle_key, throttle_limit, ...) whose concurrency and throttle keys keep a
    free slot, counting the candidates already taken. ``used`` holds the current counts
    of keys shared by several candidates (others passed the SQL check alone)."""
    picked: list[str] = []
    for run_id, status, k1, l1, k2, l2, tk, tl, *_ in rows:
        if status != "running":  # a takeover is already counted as running
            slots = [
                (slot(kind, k), lim)
                for kind, k, lim in (("c1", k1, l1), ("c2", k2, l2), ("t", tk, tl))
                if k
            ]
            if any(used.get(s, 0) >= lim for s, lim in slots):
                continue
            for s, _ in slots:
                used[s] = used.get(s, 0) + 1
        picked.append(run_id)
        if len(picked) >= limit:
            break
    return picked

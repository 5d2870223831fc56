"""Choosing which candidate runs a keyed claim takes (shared by every backend)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A key's slot: ("c1" | "c2", concurrency key) or ("t", throttle key). Kinds keep a
# concurrency key and a throttle key of the same name apart.
Slot = tuple[str, str]


def pick(rows: Sequence[Sequence[Any]], used: dict[Slot, int], limit: int) -> list[str]:
    """Up to ``limit`` run ids from candidate ``rows`` (id, status, ckey1, climit1, ckey2,
    climit2, throttle_key, throttle_limit, ...), in order, whose concurrency and throttle
    keys keep a free slot, counting the candidates already taken. ``used`` holds the
    current count of each slot known to be in use (updated in place); a running
    candidate (a takeover) is already counted there."""
    picked: list[str] = []
    for run_id, status, k1, l1, k2, l2, tk, tl, *_ in rows:
        if status != "running":
            slots = [
                ((kind, key), lim)
                for kind, key, lim in (("c1", k1, l1), ("c2", k2, l2), ("t", tk, tl))
                if key
            ]
            if any(used.get(s, 0) >= lim for s, lim in slots):
                continue
            for s, _ in slots:
                used[s] = used.get(s, 0) + 1
        picked.append(run_id)
        if len(picked) >= limit:
            break
    return picked

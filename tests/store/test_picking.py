"""The keyed-claim picker (``store/picking.py``): which candidates a claim takes."""

from __future__ import annotations

from typing import Any

from tether.store.picking import Slot, pick


def _row(
    run_id: str,
    status: str = "queued",
    c1: tuple[str, int] | None = None,
    c2: tuple[str, int] | None = None,
    throttle: tuple[str, int] | None = None,
) -> tuple[Any, ...]:
    k1, l1 = c1 or (None, None)
    k2, l2 = c2 or (None, None)
    tk, tl = throttle or (None, None)
    return (run_id, status, k1, l1, k2, l2, tk, tl, 60.0)


def test_candidates_without_keys_are_taken_in_order_up_to_the_limit() -> None:
    rows = [_row(f"r{i}") for i in range(5)]
    assert pick(rows, {}, 3) == ["r0", "r1", "r2"]


def test_a_key_takes_no_more_than_its_free_slots() -> None:
    rows = [_row(f"r{i}", c1=("chat:a", 2)) for i in range(4)] + [_row("b", c1=("chat:b", 1))]
    used: dict[Slot, int] = {("c1", "chat:a"): 1}  # one of chat:a already running
    assert pick(rows, used, 10) == ["r0", "b"]
    assert used == {("c1", "chat:a"): 2, ("c1", "chat:b"): 1}


def test_every_key_of_a_run_must_have_a_slot() -> None:
    rows = [
        _row("r0", c1=("user:1", 5), c2=("team:x", 1)),
        _row("r1", c1=("user:2", 5), c2=("team:x", 1)),  # team:x is full after r0
        _row("r2", c1=("user:2", 5), throttle=("api", 1)),
        _row("r3", throttle=("api", 1)),  # the throttle's start went to r2
    ]
    assert pick(rows, {}, 10) == ["r0", "r2"]


def test_a_takeover_of_a_running_run_is_always_taken_and_not_counted_again() -> None:
    rows = [_row("t", status="running", c1=("k", 1)), _row("q", c1=("k", 2))]
    used: dict[Slot, int] = {("c1", "k"): 1}  # the running run itself
    assert pick(rows, used, 10) == ["t", "q"]
    assert used == {("c1", "k"): 2}


def test_kinds_keep_keys_of_the_same_name_apart() -> None:
    rows = [_row("r0", c1=("x", 1)), _row("r1", throttle=("x", 1)), _row("r2", c2=("x", 1))]
    assert pick(rows, {}, 10) == ["r0", "r1", "r2"]


def test_limit_counts_takeovers_too() -> None:
    rows = [_row("t", status="running"), _row("a"), _row("b")]
    assert pick(rows, {}, 2) == ["t", "a"]

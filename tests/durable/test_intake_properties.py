"""Hostile events (durable/intake.py), on both backends: whatever ``send`` is given, it
stores every event and returns their ids, or raises ``InvalidEventError`` and stores
nothing (no event, no run: never half a batch). The limits (event size, events per send,
name and id length) fail the same way, naming the limit and how to raise it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tether

FAST = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["\x00", "\ud800", "'; DROP TABLE runs; --", "\u202e", b"bytes", math.nan])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=3)
        | st.sets(st.integers(), max_size=2)
    ),
    max_leaves=10,
)
names = st.text(max_size=12) | st.sampled_from(["order.created", "", "\x00", "a" * 2000, "\udfff"])
ids = (
    st.none()
    | st.text(max_size=10)
    | st.sampled_from(["dup", "\x00id", "i" * 2000])
    | st.integers()
)
one_event = st.one_of(
    st.builds(lambda n, d, i: {"name": n, "data": d, "id": i}, names, values, ids),
    st.builds(
        lambda n, d: {"name": n, "data": d},
        names,
        st.dictionaries(st.text(max_size=5), values, max_size=4),
    ),
    st.dictionaries(st.sampled_from(["name", "data", "id", "ts", "extra"]), values, max_size=4),
    st.builds(
        lambda n, d: tether.Event(n, d),
        st.text(min_size=1, max_size=8),
        st.dictionaries(st.text(max_size=3), values, max_size=3),
    ),
    values,
)
sends = one_event | st.lists(one_event, max_size=4)


def _counts(th: tether.Harness) -> tuple[int, int]:
    read: Any = th.store.read  # type: ignore[attr-defined]
    return read("SELECT count(*) FROM events")[0][0], read("SELECT count(*) FROM runs")[0][0]


@FAST
@given(sent=sends)
def test_send_stores_everything_or_nothing(th: tether.Harness, sent: Any) -> None:
    if "on_order" not in th.functions:

        @th.function(id="on_order", trigger=tether.on_event("order.created"))
        def on_order(ctx: tether.SyncContext) -> None:
            return None

    before = _counts(th)
    try:
        event_ids = th.send(sent)
    except tether.InvalidEventError as exc:
        assert str(exc)
        assert _counts(th) == before, "a refused send stored something"
        return
    assert event_ids and all(isinstance(e, str) for e in event_ids)
    events, _ = _counts(th)
    assert before[0] <= events <= before[0] + len(event_ids)


def test_limits_refuse_the_whole_send_naming_the_fix(store_url: str) -> None:
    th = tether.Harness(store_url, max_event_bytes=1000, max_events_per_send=3)
    try:
        before = _counts(th)
        with pytest.raises(
            tether.InvalidEventError, match=r"over the limit of 1000.*max_event_bytes"
        ):
            th.send([tether.Event("a", {"ok": 1}), tether.Event("b", {"x": "y" * 1000})])
        with pytest.raises(
            tether.InvalidEventError, match=r"more than 3 events.*max_events_per_send"
        ):
            th.send([tether.Event("a", {}) for _ in range(4)])

        # A generator is read only as far as the limit: an endless one is refused too.
        def endless() -> Any:
            while True:
                yield tether.Event("a", {})

        with pytest.raises(tether.InvalidEventError, match="more than 3 events"):
            th.send(endless())
        with pytest.raises(tether.InvalidEventError, match="over 1024"):
            th.send(tether.Event("n" * 1025, {}))
        with pytest.raises(tether.InvalidEventError, match="lone surrogate"):
            th.send(tether.Event("a", {"t": "\ud800"}))
        with pytest.raises(tether.InvalidEventError, match="NUL"):
            th.send(tether.Event("a\x00b", {}))
        with pytest.raises(tether.InvalidEventError, match="nested too deeply"):
            deep: Any = {}
            for _ in range(100_000):
                deep = {"d": deep}
            th.send(tether.Event("a", deep))
        assert _counts(th) == before
        # Multi-byte text counts in bytes: 400 three-byte characters are 1200 bytes.
        with pytest.raises(tether.InvalidEventError, match="over the limit"):
            th.send(tether.Event("a", {"t": "€" * 400}))
        assert (
            len(th.send([tether.Event("a", {"t": "€" * 300}, ts=datetime(2000, 1, 1, tzinfo=UTC))]))
            == 1
        )
    finally:
        th.close()

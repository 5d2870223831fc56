"""Hostile requests to the dashboard's API beyond what its OpenAPI document describes (the
schemathesis test covers that): any body bytes, any content type, any path text. Every
answer is below 500 and JSON, and a refused request changes nothing in the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import tether
from tests.dashboard.conftest import build
from tether.dashboard import create_app
from tether.testing import temporary_harness

FAST = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda v: json.dumps(v).encode(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=6),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["name", "data", "id", "from_step", "x"]), inner, max_size=4
                )
            ),
            max_leaves=8,
        ),
    ),
    st.sampled_from(
        [
            b'{"name": "ticket.created", "data": {"t": "\\ud800"}}',
            b'{"name": "\\u0000", "data": {}}',
            b'{"name": "ticket.created", "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            b'{"name": "ticket.created", "data": {"n": 1e999}}',
            b'{"name": "ticket.created", "data": {"n": NaN}}',
            b'{"from_step": {"$ne": null}}',
            b"\xff\xfe\x00",
        ]
    ),
)
types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])
paths = st.sampled_from(
    ["/api/events", "/api/runs/seed/replay", "/api/runs/seed/cancel", "/api/runs/{x}/cancel"]
) | st.text(max_size=20).map(lambda t: f"/api/runs/{quote(t, safe='')}/replay")


@pytest.fixture(scope="module")
def client() -> Iterator[tuple[TestClient, tether.Harness]]:
    with temporary_harness() as th:
        build(th)
        th.run("triage", {"id": "seed"}, run_id="seed")
        with TestClient(create_app(th, token="")) as c:
            yield c, th


def _state(th: tether.Harness) -> tuple[int, int]:
    read: Any = th.store.read  # type: ignore[attr-defined]
    return read("SELECT count(*) FROM events")[0][0], read("SELECT count(*) FROM runs")[0][0]


@FAST
@given(path=paths, body=bodies, content_type=types)
@example(
    path="/api/events",
    body=b'{"name": "ticket.created", "data": {"t": "\\ud800"}}',
    content_type="application/json",
)
def test_any_post_is_answered_below_500_and_a_refusal_writes_nothing(
    client: tuple[TestClient, tether.Harness], path: str, body: bytes, content_type: str
) -> None:
    c, th = client
    before = _state(th)
    headers = {"Content-Type": content_type} if content_type else {}
    response = c.post(path, content=body, headers=headers)
    assert response.status_code < 500, (path, body[:80], response.text[:300])
    if response.headers.get("content-type", "").startswith("application/json"):
        response.json()
    if response.status_code >= 400:
        assert _state(th) == before, "a refused request wrote to the store"


@FAST
@given(
    query=st.dictionaries(
        st.sampled_from(
            [
                "q",
                "status",
                "limit",
                "before",
                "since",
                "until",
                "hours",
                "function_id",
                "event_id",
                "name",
                "run_id",
            ]
        ),
        st.text(max_size=12),
        max_size=4,
    )
)
def test_any_query_string_is_answered_below_500(
    client: tuple[TestClient, tether.Harness], query: dict[str, str]
) -> None:
    c, _ = client
    for path in ("/api/runs", "/api/events", "/runs", "/events", "/api/audit"):
        response = c.get(path, params=query)
        assert response.status_code < 500, (path, query, response.text[:300])

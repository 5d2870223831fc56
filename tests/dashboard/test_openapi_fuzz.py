"""Schemathesis against the dashboard's OpenAPI document: no 5xx for any generated input
(every operation, 25 generated cases each, derandomized)."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.dashboard.conftest import build  # noqa: E402
from tether.dashboard import create_app  # noqa: E402
from tether.testing import temporary_harness  # noqa: E402

OPERATIONS = [
    "GET /api/runs",
    "GET /api/runs/{run_id}",
    "POST /api/runs/{run_id}/cancel",
    "POST /api/runs/{run_id}/replay",
    "GET /api/functions",
    "GET /api/events",
    "POST /api/events",
    "GET /api/audit",
    "GET /api/windows",
    "GET /api/windows/{key}",
    "GET /api/subjects",
    "GET /api/subjects/{subject}",
    "DELETE /api/subjects/{subject}",
    "GET /api/subjects/{subject}/export",
    "DELETE /api/subjects/{subject}/memory/{item}",
    "PUT /api/subjects/{subject}/preferences",
]


@pytest.mark.parametrize("label", OPERATIONS)
def test_api_never_answers_5xx(label: str) -> None:
    with temporary_harness() as th:
        build(th)
        th.run("triage", {"id": "seed"})
        schema = schemathesis.openapi.from_asgi("/api/openapi.json", create_app(th, token=""))
        operations = {r.ok().label: r.ok() for r in schema.get_all_operations()}
        assert set(operations) == set(OPERATIONS)

        @given(case=operations[label].as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text[:500])

        check()

"""TetherSaver passes LangGraph's own conformance suite (langgraph-checkpoint-conformance):
every base capability and every extended one it detects, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

import tether
from tether.integrations.langgraph import TetherSaver


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_tether_saver_passes_langgraphs_conformance_suite(backend: str, tmp_path: Path) -> None:
    from tests.conftest import drop_schema, pg_schema_url, require_postgres

    schemas: list[str] = []
    harnesses: list[tether.Harness] = []

    def url() -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"
        require_postgres()
        schemas.append(f"t_{uuid.uuid4().hex[:16]}")
        return pg_schema_url(schemas[-1])

    @checkpointer_test(name=f"TetherSaver[{backend}]")
    async def saver() -> AsyncIterator[TetherSaver]:
        harness = tether.Harness(url())
        harnesses.append(harness)
        yield TetherSaver(harness)
        harness.close()

    try:
        report = asyncio.run(validate(saver))
    finally:
        for harness in harnesses:
            harness.close()
        for schema in schemas:
            drop_schema(schema)
    report.print_report()
    assert report.passed_all_base() and report.passed_all()
    every = {c.value for c in BASE_CAPABILITIES | EXTENDED_CAPABILITIES}
    assert {name for name, r in report.results.items() if r.detected} == every
    assert all(
        r.passed and r.tests_failed == 0 and r.tests_passed > 0 for r in report.results.values()
    )

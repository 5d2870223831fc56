"""A LangGraph graph checkpointed by TetherSaver, invoked inside a tether function in a worker
subprocess SIGKILLed inside node k, resumes in a new worker from its last superstep: nodes
1..k-1 do not run again (counted in files), on SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.durable.apps.sandbox import lines, result, wait_for
from tests.integrations.apps import graph_app
from tests.integrations.conftest import AppSandbox

APP = "tests.integrations.apps.graph_app:th"


@pytest.fixture(params=["sqlite", "postgres"])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppSandbox]:
    from tests.conftest import drop_schema, pg_schema_url, require_postgres

    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tether.db'}"
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:16]}"
        url = pg_schema_url(schema)
    with AppSandbox(tmp_path, url, graph_app.build(url), "") as box:
        yield box
    if schema is not None:
        drop_schema(schema)


def test_graph_killed_in_a_node_resumes_from_its_last_superstep(sandbox: AppSandbox) -> None:
    k, folder = 4, sandbox.dir
    handle = sandbox.harness.enqueue("graph", {"folder": str(folder), "gate": k})
    first = sandbox.worker(ref=APP)
    wait_for(lambda: len(lines(folder / "begun")) == k, 60, f"node {k} to start")
    sandbox.kill(first)
    (folder / "release").touch()
    sandbox.worker(ref=APP)

    assert result(sandbox, handle, timeout=60) == list(range(1, graph_app.STEPS + 1))
    begun = collections.Counter(line.split()[0] for line in lines(folder / "begun"))
    assert begun == {str(n): 2 if n == k else 1 for n in range(1, graph_app.STEPS + 1)}
    assert sorted(map(int, lines(folder / "effects"))) == list(range(1, graph_app.STEPS + 1))

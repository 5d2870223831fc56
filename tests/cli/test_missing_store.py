"""Commands that read stored runs refuse a store that does not exist, name it and say how
to create one, and create nothing (a mistyped URL never leaves a new store behind)."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

import tether
from tests.cli.conftest import Tether
from tests.conftest import drop_schema, pg_schema_url, require_postgres

APP = """
import tether

th = tether.Harness()

@th.function(id="greet")
def greet(ctx):
    return "hi"
"""

READING = [
    ["runs"],
    ["runs", "--json"],
    ["show", "some-run"],
    ["cancel", "some-run"],
    ["replay", "some-run"],
    ["prune", "--older-than", "1d"],
    ["doctor"],
    ["check-replay", "myapp.py"],
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TETHER_STORE", raising=False)
    (tmp_path / "myapp.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.mark.parametrize("args", READING, ids=lambda a: " ".join(a))
def test_reading_commands_refuse_a_missing_sqlite_file(
    project: Path, tether_cmd: Tether, args: list[str]
) -> None:
    result = tether_cmd(*args, "--store", "sqlite:///typo.db")
    assert result.code == 1, result
    said = " ".join((result.out + result.err).split())
    assert f"no tether store at {project / 'typo.db'}" in said
    assert "tether migrate" in said and "run the app" in said
    assert not (project / "typo.db").exists()
    assert not any(project.glob("typo.db*"))


def test_the_default_store_of_a_new_project_is_not_created_by_reading(
    project: Path, tether_cmd: Tether
) -> None:
    result = tether_cmd("runs")
    assert result.code == 1 and "no tether store at" in result.err
    assert str(project / ".tether" / "tether.db") in " ".join(result.err.split())
    assert not (project / ".tether").exists()  # no directory either


def test_a_missing_directory_is_not_created(project: Path, tether_cmd: Tether) -> None:
    result = tether_cmd("show", "x", "--store", f"sqlite:///{project}/no/such/dir/x.db")
    assert result.code == 1 and "no tether store at" in result.err
    assert not (project / "no").exists()


def test_migrate_creates_the_store_the_reading_commands_then_open(
    project: Path, tether_cmd: Tether
) -> None:
    url = "sqlite:///typo.db"
    assert tether_cmd("migrate", "--store", url).code == 0
    assert (project / "typo.db").exists()
    result = tether_cmd("runs", "--json", "--store", url)
    assert result.code == 0 and result.out.strip() == "[]"
    assert tether_cmd("doctor", "--store", url).code == 0


@pytest.mark.parametrize("args", READING, ids=lambda a: " ".join(a))
def test_reading_commands_refuse_a_postgres_schema_without_tables(
    project: Path, tether_cmd: Tether, args: list[str]
) -> None:
    import psycopg

    server = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_schema_url(schema)
    try:
        result = tether_cmd(*args, "--store", url)
        assert result.code == 1, result
        said = " ".join((result.out + result.err).split())
        assert f"no tether store in schema {schema}" in said
        assert "tether_meta" in said and "tether migrate" in said
        with psycopg.connect(server) as conn:
            found = conn.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (schema,)
            ).fetchall()
        assert found == []  # nothing was created
    finally:
        drop_schema(schema)


def test_a_postgres_store_with_tables_is_read(project: Path, tether_cmd: Tether) -> None:
    import psycopg

    server = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_schema_url(schema)
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')  # an empty schema: still no store
        assert tether_cmd("runs", "--store", url).code == 1
        th = tether.Harness(url)
        th.enqueue(th.function(id="greet")(lambda ctx: "hi"))
        th.close()
        result = tether_cmd("runs", "--json", "--store", url)
        assert result.code == 0, result
        assert '"greet"' in result.out
        assert tether_cmd("doctor", "--store", url).code == 0
    finally:
        drop_schema(schema)

"""Opening a store creates it only where a new store is meant (``open_store(create=...)``).

Reading must not create: ``create=False`` refuses a store that is not there, naming it and
how to create one, and leaves nothing behind. Creating makes the file in an existing
folder; the one folder created for it is a new project's ``.tether``. Bad paths are
``StoreError``s naming the offending path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tether
from tests.conftest import PG_URL
from tether.errors import StoreError, StoreNotFound
from tether.store import open_store


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_opening_a_missing_store_to_read_creates_nothing(store_url: str, tmp_path: Path) -> None:
    before = _tree(tmp_path)
    with pytest.raises(StoreNotFound) as info:
        open_store(store_url, create=False)
    message = str(info.value)
    assert "tether migrate --store" in message and "starting the app" in message
    if store_url.startswith("sqlite"):
        assert str(tmp_path / "tether.db") in message
    assert _tree(tmp_path) == before
    if store_url.startswith("postgres"):  # nor did it create the schema
        import psycopg

        schema = store_url.rsplit("schema=", 1)[1]
        with psycopg.connect(PG_URL) as conn:
            found = conn.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (schema,)
            ).fetchall()
        assert found == []


def test_an_existing_store_opens_to_read(store_url: str) -> None:
    with tether.Harness(store_url) as th:

        @th.function()
        def hello(ctx: tether.SyncContext) -> str:
            return "hi"

        assert th.run(hello) == "hi"
    reader = open_store(store_url, create=False)
    try:
        assert [r.output for r in reader.list_runs()] == ["hi"]
    finally:
        reader.close()


def test_an_explicit_path_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "x.db"
    for create in (True, False):
        with pytest.raises(StoreError) as info:
            open_store(f"sqlite:///{path}", create=create)
        assert str(tmp_path / "no") in str(info.value)
    with pytest.raises(StoreError, match="mkdir -p") as info:
        tether.Harness(f"sqlite:///{path}").list_runs()
    assert str(path.parent) in str(info.value)
    assert not (tmp_path / "no").exists()


def test_a_new_project_gets_its_default_store_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TETHER_STORE", raising=False)
    with pytest.raises(StoreNotFound, match=r"\.tether/tether\.db"):
        open_store(create=False)  # a reading command in a new project
    assert not (tmp_path / ".tether").exists()
    with tether.Harness() as th:
        assert th.list_runs() == []
    assert (tmp_path / ".tether" / "tether.db").is_file()
    # the same folder named explicitly
    os.remove(tmp_path / ".tether" / "tether.db")
    os.rmdir(tmp_path / ".tether")
    open_store("sqlite:///.tether/other.db").close()
    assert (tmp_path / ".tether" / "other.db").is_file()


def test_a_path_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    for create in (True, False):
        with pytest.raises(StoreError, match="is a file, not a folder") as info:
            open_store(f"sqlite:///{blocker}/sub/x.db", create=create)
        assert str(blocker) in str(info.value)
    assert blocker.read_text() == "not a folder"


def test_a_folder_is_not_a_store_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder") as info:
        open_store(f"sqlite:///{tmp_path}")
    assert str(tmp_path / "tether.db") in str(info.value)  # the fix names a file in it


def test_an_empty_file_opened_to_read_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StoreNotFound, match="does not exist"):
        open_store(f"sqlite:///{path}", create=False)

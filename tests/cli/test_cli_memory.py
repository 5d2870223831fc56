"""``tether memory search|reindex`` on a SQLite store, with the real local model."""

from __future__ import annotations

import json
from pathlib import Path

import tether
from tests.cli.conftest import Tether

FACTS = ["Allergic to peanuts.", "Owns a golden retriever called Max.", "Order ORD-99812 is late."]


def _store(tmp_path: Path, embedder: str | None) -> str:
    url = f"sqlite:///{tmp_path / 'tether.db'}"
    th = tether.Harness(url, embedder=embedder)
    th.memory("user:1").add_many(FACTS)
    th.memory("user:2").add("Order ORD-99812 belongs to user 2 too.")
    th.close()
    return url


def test_reindex_then_search_by_meaning(tmp_path: Path, tether_cmd: Tether, minilm: object) -> None:
    url = _store(tmp_path, embedder=None)
    before = tether_cmd("memory", "search", "user:1", "food intolerance", "--store", url, "--json")
    assert before.code == 0 and json.loads(before.out) == []  # words only: nothing in common
    done = tether_cmd("memory", "reindex", "--store", url)
    assert done.code == 0, done.err
    assert "reindexed 4 memories: no index -> local:all-minilm-l6-v2 (384 dimensions)" in done.out
    after = tether_cmd("memory", "search", "user:1", "food intolerance", "--store", url, "--json")
    assert [h["text"] for h in json.loads(after.out)][:1] == ["Allergic to peanuts."]
    shown = tether_cmd("memory", "search", "user:1", "ORD-99812", "--store", url)
    assert "Order ORD-99812 is late." in shown.out and "user 2" not in shown.out


def test_bad_input_exits_with_the_fix(tmp_path: Path, tether_cmd: Tether) -> None:
    url = _store(tmp_path, embedder=None)
    bad_k = tether_cmd("memory", "search", "user:1", "peanuts", "-k", "0", "--store", url)
    assert bad_k.code == 1 and "k is the number of hits" in bad_k.err
    missing = tether_cmd(
        "memory", "search", "user:1", "x", "--store", f"sqlite:///{tmp_path}/no.db"
    )
    assert missing.code == 1 and "no tether store" in missing.err
    assert not (tmp_path / "no.db").exists()
    nobody = tether_cmd("memory", "search", "user:404", "peanuts", "--store", url)
    assert nobody.code == 0 and "no memory of user:404 matches" in nobody.out
    wrong = tether_cmd("memory", "reindex", "--embedder", "local:nope", "--store", url)
    assert wrong.code == 1 and "local:all-minilm-l6-v2" in wrong.err

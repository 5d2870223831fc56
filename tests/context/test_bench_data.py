"""The benchmark's data generator: seeded, long, and labelled correctly."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "context_data.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("context_data", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_seeded_long_and_labelled() -> None:
    gen = load()
    data = gen.dataset(seed=3, conversations=2, pairs=300)
    assert json.dumps(data) == json.dumps(gen.dataset(seed=3, conversations=2, pairs=300))
    assert json.dumps(data) != json.dumps(gen.dataset(seed=4, conversations=2, pairs=300))
    updated = 0
    for conv in data["conversations"]:
        turns = conv["turns"]
        assert len(turns) >= 600 and len({t["session"] for t in turns}) == 8
        assert any(t["role"] == "tool" and len(t["content"]) > 2000 for t in turns)
        assert [t["i"] for t in turns] == list(range(len(turns)))
        for q in conv["questions"]:
            assert (
                turns[q["turn"]]["content"] == q["question"] and turns[q["turn"]]["role"] == "user"
            )
            for e in q["evidence"]:
                assert e < q["turn"] and q["answer"] in turns[e]["content"]
            later = turns[max(q["evidence"]) + 1 : q["turn"]]
            assert not any(old in t["content"] for t in later for old in q["superseded"])
            assert q["answer"] not in turns[q["turn"] + 1]["content"]  # the reply never repeats it
            updated += bool(q["superseded"])
    assert updated > 0

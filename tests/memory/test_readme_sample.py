"""The README's "Long-term memory" sample runs as written and prints what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_memory_sample_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    minilm: object,
) -> None:
    monkeypatch.chdir(tmp_path)
    section = README.read_text().split("## Long-term memory", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Allergic to peanuts and sesame.",
        "Refund promised for ORD-99812 after the blender arrived broken.",
    ]
    th = namespace["th"]
    mem = th.memory("user:42")  # type: ignore[attr-defined]
    assert [e["text"] for e in mem.export() if not e["current"]] == ["Lives in Lisbon."]
    run = th.run("remember", {"user": "7", "fact": "Prefers email.", "id": "9"})  # type: ignore[attr-defined]
    assert run is None and th.memory("user:7").list()[0].source == "ticket:9"  # type: ignore[attr-defined]
    th.close()  # type: ignore[attr-defined]

"""The README's subjects example runs as written and prints what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_subjects_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    section = README.read_text().split("## End users' control (subjects)", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "I live in Lyon; order ORD-1182 user:42"
    expected = code.rsplit("# ", 1)[1].strip()  # the comment under the last print
    assert lines[1] == expected
    namespace["th"].close()  # type: ignore[attr-defined]

"""The README's context-window sample runs as written and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_context_sample_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = next(
        b
        for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
        if "WindowCore(" in b
    )
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    built = namespace["built"]
    report = built.report  # type: ignore[attr-defined]
    assert report.tokens <= 2000 and len(report.stubbed) == 1
    assert "Ada Lovelace, account ACC-7781" in built.messages[0].content  # type: ignore[attr-defined]
    assert capsys.readouterr().out.split()[-4:] == ["depot", "Leeds,", "2", "May."]

"""The README's context-window sample runs as written and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(marker: str) -> str:
    return next(
        b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if marker in b
    )


def test_context_sample_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tether

    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"tether": tether}
    exec(compile(_block("th.context("), "README.md", "exec"), namespace)
    namespace["th"].close()  # type: ignore[attr-defined]
    with tether.Harness(f"sqlite:///{tmp_path / 'support.db'}") as again:  # the same log
        assert len(again.context("support:T-1", budget=2000).items()) == 4
    built = namespace["built"]
    report = built.report  # type: ignore[attr-defined]
    assert report.tokens <= 2000 and len(report.stubbed) == 1
    assert "Ada Lovelace, account ACC-7781" in built.messages[0].content  # type: ignore[attr-defined]
    assert capsys.readouterr().out.split()[-4:] == ["depot", "Leeds,", "2", "May."]


def test_durable_context_sample_registers(tmp_path: Path) -> None:
    import tether

    th = tether.Harness(f"sqlite:///{tmp_path / 'a.db'}")
    exec(compile(_block("ctx.context("), "README.md", "exec"), {"tether": tether, "th": th})
    assert "answer" in th.functions
    th.close()

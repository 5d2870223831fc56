"""The README's first example runs as written (on a store under tmp_path)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_first_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "ticket 1: billing" in out
    assert "'label': 'billing'" in out and "'replied': True" in out
    namespace["th"].close()  # type: ignore[attr-defined]


def test_flow_control_example_registers(tmp_path: Path) -> None:
    import tether

    code = next(b for b in python_blocks() if "tether.Concurrency(" in b)
    th = tether.Harness(f"sqlite:///{tmp_path / 'flow.db'}")
    exec(compile(code, "README.md", "exec"), {"tether": tether, "th": th})
    assert th.functions["reply"].singleton is not None
    th.close()


def test_testing_example_runs() -> None:
    code = next(b for b in python_blocks() if "temporary_harness" in b)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    namespace["test_nap"]()  # type: ignore[operator]

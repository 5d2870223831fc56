"""The README's Evals example runs as written (on a store under tmp_path)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_evals_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = next(b for b in blocks if "evals.run(th" in b)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first == "0.5 1.0"
    case_id, run_id = second.split()
    assert case_id == "crash" and run_id.startswith("eval-") and run_id.endswith("-task")
    th = namespace["th"]
    assert th.get_run(run_id).function_id == "triage"  # type: ignore[attr-defined]
    th.close()  # type: ignore[attr-defined]

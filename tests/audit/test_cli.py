"""`tether audit code PATH`: formats, exit codes for CI, and escaping of user strings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tether.cli import app

CORPUS = Path(__file__).parent / "corpus"
runner = CliRunner()


def test_json_has_findings_and_scores() -> None:
    result = runner.invoke(
        app, ["audit", "code", str(CORPUS), "--format", "json", "--root", str(CORPUS)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc["scores"]) == {"orchestration", "context", "retry", "observability"}
    assert all(0 <= v <= 100 for v in doc["scores"].values())
    first = doc["findings"][0]
    assert set(first) >= {"rule", "area", "path", "line", "col", "message", "fix"}


def test_fail_under_exits_1_below_and_0_above(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "from openai import OpenAI\nc = OpenAI()\ndef f():\n    return c.chat.completions.create(model='m', messages=[])\n"
    )
    (tmp_path / "good.py").write_text("print('hi')\n")
    low = runner.invoke(app, ["audit", "code", str(tmp_path / "bad.py"), "--fail-under", "80"])
    assert low.exit_code == 1
    assert "fails" in low.stdout
    high = runner.invoke(app, ["audit", "code", str(tmp_path / "good.py"), "--fail-under", "80"])
    assert high.exit_code == 0 and "no findings" in high.stdout


def test_bad_input_exits_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["audit", "code", str(tmp_path / "missing")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    bad = runner.invoke(app, ["audit", "code", str(tmp_path), "--fail-under", "140"])
    assert bad.exit_code == 2


def test_unparsable_file_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n")
    result = runner.invoke(app, ["audit", "code", str(tmp_path)])
    assert result.exit_code == 0
    assert "broken.py:1" in result.stderr and "not parsed" in result.stderr


def test_sarif_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "audit.sarif"
    result = runner.invoke(app, ["audit", "code", str(CORPUS), "--format", "sarif", "-o", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text())["version"] == "2.1.0"


def test_text_escapes_markup_in_paths_and_messages(tmp_path: Path) -> None:
    folder = tmp_path / "[red]x"
    folder.mkdir()
    (folder / "[bold]app.py").write_text(
        "import requests\ndef f():\n    pass\n    requests.get('https://x.example')\n"
    )
    result = runner.invoke(
        app, ["audit", "code", str(folder), "--root", str(tmp_path)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "[red]x/[bold]app.py:4:5" in result.stdout
    assert "TH305" in result.stdout


def test_the_command_runs_as_a_subprocess() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether.cli",
            "audit",
            "code",
            str(CORPUS / "clean_utils.py"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["findings"] == []


def test_rules_lists_every_rule() -> None:
    from tether.audit import RULES

    result = runner.invoke(app, ["audit", "rules"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for rule_id in RULES:
        assert rule_id in result.stdout

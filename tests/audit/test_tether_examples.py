"""tether's own examples, written as the docs say, get no finding."""

from __future__ import annotations

import re
from pathlib import Path

import tether.audit

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_app_gets_no_finding() -> None:
    audit = tether.audit.code(ROOT / "src" / "tether" / "demo", root=ROOT)
    assert audit.files >= 2
    assert audit.model_calls >= 1  # the demo's ctx.step.llm is seen, and is fine
    assert audit.findings == []


def test_the_readme_python_blocks_get_no_finding(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 4
    for number, block in enumerate(blocks):
        (tmp_path / f"readme_{number}.py").write_text(block)
    audit = tether.audit.code(tmp_path, root=tmp_path)
    assert audit.skipped == [], audit.skipped  # every block parses
    assert audit.files == len(blocks)
    assert audit.findings == [], audit.findings

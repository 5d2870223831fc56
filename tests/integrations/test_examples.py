"""The runnable examples of docs/integrations/ run to their expected output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXPECTED = {
    "pydantic_ai_agent.py": "Your order ORD-7 left the depot today.",
    "openai_agents_runner.py": "Your order ORD-7 left the depot today.",
    "langgraph_saver.py": "idea -> drafted -> reviewed",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "integrations" / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == EXPECTED[name]

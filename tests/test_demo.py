"""`tether demo`, the main job, runs end to end and says what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.local_model
def test_demo_passes(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the demo's fallback is the local model")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "demo", "--tickets", "9"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "demo passed" in out
    assert "9 / 9" in out  # every triage run completed
    assert "55 (expected 55)" in out  # the crashed run's output
    assert "open" in out  # the circuit on the failing hosted model opened
    assert "local:smollm2-135m" in out  # the local model answered the fallbacks

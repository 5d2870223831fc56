"""Each atheris target (tests/fuzz/targets.py) fuzzed for a few seconds in a subprocess:
no input in that time crashes it. Skipped without the ``fuzz`` extra (atheris)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")
pytest.importorskip("cryptography")

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("TETHER_FUZZ_SECONDS", "4"))


@pytest.mark.parametrize("target", ["events", "expr", "dataset", "audit", "decode"])
def test_fuzz_target_survives(target: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.targets",
            target,
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=4096",  # importing tether (torch with the memory extra) takes ~1.1 GB
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS + 40,
    )
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, tail
    assert "Done" in tail, tail

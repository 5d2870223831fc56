"""A lost worker: a real ``tether worker`` subprocess SIGKILLed inside a step, its run taken
over by another worker; the audit counts the gap as ``recovery``, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.durable.apps.sandbox import Sandbox, lines, result, wait_for
from tether import audit

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
K = 4  # the step the worker dies in


@pytest.fixture
def sandbox(tmp_path: Path, store_url: str) -> Iterator[Sandbox]:
    with Sandbox(tmp_path, store_url) as box:
        yield box


@BOTH
def test_a_run_taken_over_after_its_worker_died_pays_recovery(sandbox: Sandbox) -> None:
    files = sandbox.step_files(gate=K)
    handle = sandbox.harness.enqueue("ten-steps-async", files)
    first = sandbox.worker()
    wait_for(
        lambda: (
            len(lines(Path(files["begun"]))) == K and len(lines(Path(files["effects"]))) == K - 1
        ),
        30,
        f"step {K} to start",
    )
    sandbox.kill(first)
    Path(files["release"]).touch()
    sandbox.worker()
    assert result(sandbox, handle, timeout=30)["total"] == 385

    (row,) = sandbox.query(
        f"SELECT at, lost_claimed_at, lost_until FROM takeovers WHERE run_id = '{handle.run_id}'"
    )
    taken_at = row[0]
    # The killed worker's last checkpoint: step K-1, written just before step K began.
    (last,) = sandbox.query(
        f"SELECT ended_at FROM steps WHERE run_id = '{handle.run_id}' AND step_id = 'step-{K - 1}'"
    )
    expected = taken_at - max(last[0], row[1])
    assert expected > 1.0  # at least most of the 2 s lease had to run out

    doc = audit.runs(sandbox.harness).to_dict()
    fn = doc["functions"]["ten-steps-async"]
    assert fn["takeovers"] == 1 and doc["takeovers"] == 1
    assert fn["tax_seconds"]["recovery"] == pytest.approx(expected, abs=1e-6)
    assert fn["tax_by_cause"]["recovery"] == pytest.approx(expected / fn["active_s"], abs=1e-3)
    assert fn["dominant_cause"] == "recovery"
    assert fn["tax_seconds"]["failed_attempts"] == 0.0 and fn["retries_absorbed"] == 0
    # The interrupted step carries the recovery; the others none.
    steps = fn["steps"]
    assert steps[f"step-{K}"]["tax_seconds"]["recovery"] == pytest.approx(expected, abs=1e-6)
    assert all(steps[f"step-{i}"]["reliability_tax"] == 0.0 for i in range(1, 11) if i != K)
    assert doc["advice"][0]["cause"] == "recovery"
    assert "lease_ttl" in doc["advice"][0]["text"]

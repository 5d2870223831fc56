"""examples/support_agent.py: a refund over the limit waits for approval, then is paid once."""

from __future__ import annotations

from pathlib import Path

from tests.examples.conftest import run_example


def test_refund_waits_for_approval_then_is_recorded_once(tmp_path: Path) -> None:
    out = run_example("support_agent.py", tmp_path)
    assert "agent: Your refund of $480.00 for order C-3003 is over $100" in out
    assert "refund R-C-3003: waiting for a human's approval" in out
    assert out.splitlines()[-1] == "payments API: 1 refund recorded: C-3003 $480.00"

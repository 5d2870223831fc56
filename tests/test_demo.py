"""`tether demo`, the main job, runs end to end and says truthfully what happened."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tether


def _row(out: str, label: str) -> str:
    """The value cell of a row of the demo's "what happened" table."""
    m = re.search(rf"│ {re.escape(label)}\s+│ (.*?)\s+│", out)
    assert m, f"no row {label!r} in:\n{out}"
    return m.group(1)


@pytest.mark.local_model
def test_demo_passes(tmp_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:  # (found, not imported: it leaks files)
        pytest.skip("the demo's fallback is the local model (llama-cpp-python)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "demo passed" in out
    # The conversation, as the customers saw it.
    assert "Your espresso grinder (A-1001) has shipped: tracking TRK-88213" in out
    assert "I refunded $25.00 for order B-2002 (charge ch_0001)" in out
    assert "Approved refunds reach your card in 3-5 business days." in out
    assert "agent (local model):" in out  # the hosted model was down: the local one answered
    # What happened.
    assert _row(out, "conversations / customer messages") == "6 / 8"
    replies = _row(out, "replies completed / cancelled (stale)")
    assert replies == "5 / 1 (and 2 deleted with a forgotten customer)"
    assert _row(out, "fallbacks to the local model") == "1"
    assert "local:smollm2-135m: 1" in _row(out, "LLM calls by model")
    failed = _row(out, "LLM failed attempts absorbed")
    assert "rate_limited (429): 1" in failed and "server_error (500): 1" in failed
    assert _row(out, "step retries absorbed (order database)") == "1"
    assert re.match(
        r"worker pid \d+; a second worker finished it in", _row(out, "SIGKILL mid-conversation")
    )
    requests = _row(out, "payments API: requests / refunds recorded")
    assert requests == "3 / 2 (1 repeated with the same idempotency key)"
    once = _row(out, "refunds issued exactly once")
    assert once == "yes: B-2002 $25.00 (ch_0001), C-3003 $480.00 (ch_0002)"
    assert "cancelled; refund was waiting, then approved and issued" in out
    forgotten = _row(out, "customer dee forgotten (th.subject().forget())")
    assert "runs 2, events 2" in forgotten
    assert forgotten.endswith("erased from the file: yes")
    after = _row(out, "after forgetting")
    assert (
        after == "subject listed: no; raw scan of the store for what dee said ('Lisbon'): not found"
    )
    # Context windows and long-term memory, where this tether has them.
    if hasattr(tether.Context, "context"):
        assert "Your refund R-C-3003 is waiting for approval." in out  # read from the summary
        assert _row(out, "context windows").endswith("1 compaction(s)")
        assert re.match(
            r"5 items folded, \d+ -> \d+ tokens",
            _row(out, "compactions (summarizer: the hosted model)"),
        )
        assert int(_row(out, "tokens saved by the windows").split()[0].replace(",", "")) > 0
    else:
        assert _row(out, "context windows") == "not in this build (ctx.context not available)"
    if hasattr(tether.Context, "memory"):
        assert "I will keep you posted by email, as you prefer." in out  # her memory, recalled
        assert "memories 1" in forgotten
    # The audit, the eval, the dashboard.
    assert "tether audit runs: all runs" in out
    assert re.search(
        r"eval score \(mentions\): mean \d\.\d\d, pass rate \d\.\d\d over 5 answers", out
    )
    store = re.search(r"tether dev tether\.demo\.agent:th --store (sqlite:///\S+demo\.db)", out)
    assert store, out
    command = ["runs", "--store", store.group(1), "--function", "support-reply", "--json"]
    listed = subprocess.run(
        [sys.executable, "-m", "tether.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    statuses = sorted(r["status"] for r in json.loads(listed.stdout))
    assert statuses == ["cancelled"] + ["completed"] * 5  # the store the dashboard opens
    seconds = float(re.search(r"total time: ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    assert seconds < 180

"""examples/document_pipeline.py: Batch groups uploads, RateLimit records what it skips."""

from __future__ import annotations

from pathlib import Path

from tests.examples.conftest import run_example


def test_documents_are_indexed_in_batches_and_notifications_rate_limited(tmp_path: Path) -> None:
    out = run_example("document_pipeline.py", tmp_path)
    lines = out.splitlines()
    assert lines[0] == "indexed 12 documents in 3 batch runs: [2, 5, 5]"
    assert lines[1] == "notifications sent: acme 2, globex 2"
    assert lines[2].startswith("notifications skipped by the rate limit: 8 (rate limit: 2 run(s)")
    assert (tmp_path / ".tether" / "document_pipeline.db").exists()

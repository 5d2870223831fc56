"""A run killed while parallel steps ran resumes: the step that had checkpointed is not
executed again, the one in flight runs again, and the resume is not a divergence."""

from __future__ import annotations

from pathlib import Path

from tests.durable.apps import gather_app
from tests.durable.apps.sandbox import Sandbox, result, wait_for

REF = "tests/durable/apps/gather_app.py:th"


def test_a_crash_between_parallel_checkpoints_resumes_without_divergence(
    tmp_path: Path, store_url: str
) -> None:
    with Sandbox(tmp_path, store_url) as box:
        th = gather_app.build(store_url)
        try:
            effects = tmp_path / "effects.txt"
            data = {"release": str(tmp_path / "release"), "effects": str(effects)}
            handle = th.enqueue("pair", data)
            first = box.worker(concurrency=2, ref=REF)
            wait_for(
                lambda: [s.id for s in th.get_run(handle.run_id).steps] == ["quick"],
                30,
                f"the quick step checkpointed; logs:\n{box.logs()}",
                poll=0.02,
            )
            box.kill(first)  # the slow step was in flight
            (tmp_path / "release").touch()
            box.worker(concurrency=2, ref=REF)
            assert result(box, handle, 30) == ["slow", "quick"]
            assert effects.read_text().splitlines() == ["quick"]
        finally:
            th.close()

"""``tether dev``: serves the dashboard on loopback; refuses other hosts without a token,
and checks the token when it has one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.dashboard.conftest import free_port, wait_for

APP = """
import tether
th = tether.Harness()

@th.function(trigger=tether.on_event("hello"))
def hello(ctx):
    return ctx.step.run("greet", lambda: "hi")
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TETHER_DASHBOARD_TOKEN"}
    env.update(TETHER_STORE=f"sqlite:///{tmp_path / 'dev.db'}", **extra)
    return env


def test_refuses_a_non_loopback_host_without_a_token(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    out = subprocess.run(
        [sys.executable, "-m", "tether.cli", "dev", str(tmp_path / "app.py"), "--host", "0.0.0.0"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "TETHER_DASHBOARD_TOKEN" in out.stderr


def test_serves_the_dashboard_and_runs_the_worker(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "dev", str(tmp_path / "app.py"), "--port", str(port)],
        env=_env(tmp_path, TETHER_DASHBOARD_TOKEN="tok"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer tok"}
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/functions", headers=auth).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=30, what="tether dev to serve")
        assert httpx.get(f"{base}/api/runs").status_code == 401
        sent = httpx.post(f"{base}/api/events", json={"name": "hello"}, headers=auth).json()
        run_id = sent["accepted"][0]["run_ids"][0]
        run = wait_for(
            lambda: (
                (r := httpx.get(f"{base}/api/runs/{run_id}", headers=auth).json())["status"]
                == "completed"
                and r
            ),
            what="the worker to run it",
        )
        assert run["output"] == "hi"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)

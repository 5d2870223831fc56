"""The `tether` command line, driven through typer's runner on real store files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether.cli import app

APP = """
import tether

th = tether.Harness()

@th.function(id="greet", trigger=tether.on_event("user.created"))
def greet(ctx: tether.SyncContext) -> str:
    return ctx.step.run("hello", lambda: "hello " + ctx.event.data["name"])

@th.function(id="broken")
def broken(ctx: tether.SyncContext) -> None:
    ctx.step.run("ok", lambda: 1)
    ctx.step.run("fail", lambda: 1 / 0)
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, Path, str]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myapp.py").write_text(textwrap.dedent(APP))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TETHER_STORE", url)
    return CliRunner(), tmp_path, url


def test_send_runs_show_replay(env: tuple[CliRunner, Path, str]) -> None:
    runner, folder, url = env
    result = runner.invoke(app, ["send", "myapp.py", "user.created", "--data", '{"name": "ada"}'])
    assert result.exit_code == 0, result.output
    assert "started runs" in result.output

    result = runner.invoke(app, ["runs", "--json"])
    runs = json.loads(result.output)
    assert len(runs) == 1 and runs[0]["status"] == "queued" and runs[0]["function_id"] == "greet"

    # execute with the app's own harness (as `tether worker` would)
    from tether.cli.loader import load_app

    harness = load_app("myapp.py:th")
    with harness.worker():
        assert tether.RunHandle(harness, runs[0]["id"]).result(timeout=10) == "hello ada"
    harness.close()

    result = runner.invoke(app, ["show", runs[0]["id"]])
    assert result.exit_code == 0 and "completed" in result.output and "hello" in result.output
    shown = json.loads(runner.invoke(app, ["show", runs[0]["id"], "--json"]).output)
    assert shown["steps"][0]["output"] == "hello ada"

    result = runner.invoke(app, ["replay", runs[0]["id"], "--from-step", "hello"])
    assert result.exit_code == 0 and "queued as run" in result.output
    result = runner.invoke(app, ["runs", "--status", "queued", "--json"])
    assert json.loads(result.output)[0]["replay_of"] == runs[0]["id"]


def test_cancel_check_replay_prune_doctor(env: tuple[CliRunner, Path, str]) -> None:
    runner, folder, url = env
    th = tether.Harness(url)

    @th.function(id="greet")
    def greet(ctx: tether.SyncContext) -> str:
        return "x"

    handle = th.enqueue("greet")
    th.close()
    result = runner.invoke(app, ["cancel", handle.run_id])
    assert result.exit_code == 0 and "cancelled" in result.output

    result = runner.invoke(app, ["check-replay", "myapp.py"])
    assert result.exit_code == 0, result.output

    result = runner.invoke(app, ["prune", "--older-than", "0s"])
    assert result.exit_code == 0 and "pruned 1 runs" in result.output

    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0 and "ok" in result.output and "extra postgres" in result.output

    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0 and "schema version 3" in result.output


def test_bad_input_gives_clear_errors(env: tuple[CliRunner, Path, str]) -> None:
    runner, folder, url = env
    result = runner.invoke(app, ["send", "myapp.py", "user.created", "--data", "{not json"])
    assert result.exit_code == 2 and "--data is not JSON" in result.output
    result = runner.invoke(app, ["show", "no-such-run"])
    assert result.exit_code != 0
    assert isinstance(result.exception, tether.TetherError)
    assert "does not exist" in str(result.exception)
    result = runner.invoke(app, ["worker", "missing_module_xyz"])
    assert "cannot import APP module" in str(result.exception)

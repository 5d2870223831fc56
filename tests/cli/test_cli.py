"""The `tether` command line, driven through typer's runner on real store files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tests.cli.conftest import Tether
from tether.cli import app
from tether.store import migrations
from tether.store.dialect import SQLITE

LATEST = migrations.scripts(SQLITE)[-1][0]  # the schema version a new store gets

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
    assert result.exit_code == 0 and f"schema version {LATEST}" in result.output


def test_bad_input_gives_clear_errors(env: tuple[CliRunner, Path, str]) -> None:
    runner, folder, url = env
    result = runner.invoke(app, ["send", "myapp.py", "user.created", "--data", "{not json"])
    assert result.exit_code == 2 and "--data is not JSON" in result.output
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["show", "no-such-run"])
    assert result.exit_code != 0
    assert isinstance(result.exception, tether.TetherError)
    assert "does not exist" in str(result.exception)
    result = runner.invoke(app, ["worker", "missing_module_xyz"])
    assert "cannot import APP module" in str(result.exception)


def test_cancel_of_a_finished_run_says_so_and_exits_1(tether_cmd: Tether, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cancel.db'}"
    th = tether.Harness(url)

    @th.function(id="quick")
    def quick(ctx: tether.SyncContext) -> str:
        return "done"

    th.run("quick", run_id="finished")
    queued = th.enqueue("quick").run_id
    th.close()
    result = tether_cmd("cancel", "finished", "--store", url)
    assert result.code == 1, result
    assert "run finished is already completed: nothing to cancel" in result.err
    assert tether.Harness(url).get_run("finished").status is tether.RunStatus.COMPLETED

    result = tether_cmd("cancel", queued, "--store", url)
    assert result.code == 0 and f"run {queued}: cancelled" in result.out
    result = tether_cmd("cancel", queued, "--store", url)
    assert result.code == 1 and "is already cancelled" in result.err
    result = tether_cmd("cancel", "nope", "--store", url)
    assert result.code == 1 and "run 'nope' does not exist" in result.err


def test_runs_keeps_ids_whole_at_80_columns(tmp_path: Path) -> None:
    """A real ``tether runs`` process with COLUMNS=80 (stdout a pipe, as in a script):
    every run id is printed whole, on one line, so it can be copied into ``tether show``."""
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    th = tether.Harness(url)

    @th.function(id="a-function-with-a-rather-long-name-for-the-table")
    def long_name(ctx: tether.SyncContext) -> str:
        return ctx.step.run("s", lambda: "x")

    ids = [th.enqueue(long_name).run_id for _ in range(3)]
    th.run(long_name)
    ids.append(th.list_runs(status="completed")[0].id)
    th.close()
    env = {**os.environ, "COLUMNS": "80", "TETHER_STORE": url}
    out = subprocess.run(
        [sys.executable, "-m", "tether.cli", "runs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    for run_id in ids:
        assert any(run_id in line for line in lines), (run_id, out)
    fid = "a-function-with-a-rather-long-name-for-the-table"
    assert not any(fid in line for line in lines)  # the other columns wrap instead
    shown = subprocess.run(
        [sys.executable, "-m", "tether.cli", "show", ids[-1]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "completed" in shown.stdout


def test_an_llm_step_is_shown_as_llm_as_on_the_dashboard(
    tether_cmd: Tether, tmp_path: Path
) -> None:
    from tether.dashboard.views import run_detail
    from tether.observe.redact import default_redactor
    from tether.testing import FakeLLMServer

    url = f"sqlite:///{tmp_path / 'llm.db'}"
    th = tether.Harness(url)
    with FakeLLMServer() as server:
        server.reply("Billing.")
        model = f"openai-compatible:{server.url}/v1#tiny"

        @th.function(id="ask")
        async def ask(ctx: tether.Context) -> str:
            resp = await ctx.step.llm(
                "classify", model=model, messages=[{"role": "user", "content": "?"}]
            )
            await ctx.step.run("plain", lambda: 1)
            return str(resp.text)

        th.run(ask, run_id="asked")
    run = th.get_run("asked")
    th.close()
    assert [s.kind for s in run.steps] == ["run", "run"]  # how both are stored
    dashboard = [s["kind"] for s in run_detail(run, default_redactor(), None)["steps"]]
    assert dashboard == ["llm", "run"]
    shown = json.loads(tether_cmd("show", "asked", "--json", "--store", url).out)
    assert [s["kind"] for s in shown["steps"]] == dashboard
    table = tether_cmd("show", "asked", "--store", url).out
    row = next(line for line in table.splitlines() if "classify" in line)
    assert "│ llm " in row and "│ run " not in row


def test_every_listing_prints_json(env: tuple[CliRunner, Path, str], tether_cmd: Tether) -> None:
    sent = json.loads(tether_cmd("send", "myapp.py", "user.created", "--id", "e1", "--json").out)
    assert sent[0]["event_id"] == "e1" and len(sent[0]["run_ids"]) == 1
    again = json.loads(tether_cmd("send", "myapp.py", "user.created", "--id", "e1", "--json").out)
    assert again[0]["duplicate"] is True and again[0]["run_ids"] == []

    runs = json.loads(tether_cmd("runs", "--json").out)
    assert [r["id"] for r in runs] == sent[0]["run_ids"]
    shown = json.loads(tether_cmd("show", runs[0]["id"], "--json").out)
    assert shown["id"] == runs[0]["id"] and shown["status"] == "queued"

    checked = json.loads(tether_cmd("check-replay", "myapp.py", "--json").out)
    assert isinstance(checked, list)

    doctor = json.loads(tether_cmd("doctor", "--json").out)
    assert doctor["store"]["ok"] is True and doctor["store"]["schema_version"] >= 1
    assert set(doctor["extras"]) >= {"postgres", "dashboard"}

    pruned = json.loads(tether_cmd("prune", "--older-than", "1d", "--json").out)
    assert pruned["runs"] == 0 and set(pruned) >= {"runs", "steps", "events"}

    missing = tether_cmd("doctor", "--json", "--store", "sqlite:///nowhere.db")
    assert missing.code == 1 and "no tether store" in json.loads(missing.out)["store"]["error"]

"""Stored text reaches the terminal as written: run, step, function and event ids, error
messages and outputs that look like Rich markup (or emoji codes) are neither styled, nor
dropped, nor a crash, in every command that prints them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import tether
from tests.cli.conftest import Tether

# "[red]" and "list[str]" used to vanish; "[/foo]" crashed the command (MarkupError).
HOSTILE = r"[red]lost[/red] list[str] [/foo] [bold]b :warning: \[esc] [link=x]l"
FUNCTION = "fn[red]x list[str][bold]"  # no "/" in a function id
EVENT = "ev[/foo][red]"
RUN_ID = "[/foo]run[red]"

APP = f"""
import tether

th = tether.Harness()
HOSTILE = {HOSTILE!r}

@th.function(
    id={FUNCTION!r}, trigger=tether.on_event({EVENT!r}), retries=tether.Retry(max_attempts=1)
)
def hostile(ctx):
    ctx.step.run(HOSTILE, lambda: {{"note": HOSTILE}})
    if ctx.event.data.get("fail"):
        ctx.step.run("boom", lambda: (_ for _ in ()).throw(ValueError(HOSTILE)))
    return HOSTILE
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hostile_app.py").write_text(textwrap.dedent(APP))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TETHER_STORE", url)
    return tmp_path, url


def _runs(project: tuple[Path, str]) -> tuple[str, str]:
    from tether.cli.loader import load_app

    th = load_app("hostile_app.py:th")
    th.run(FUNCTION, {"ok": 1}, run_id=RUN_ID)
    with pytest.raises(tether.RunFailed):
        th.run(FUNCTION, {"fail": True}, run_id="failed-run")
    th.close()
    return RUN_ID, "failed-run"


def test_show_prints_hostile_text_verbatim(project: tuple[Path, str], tether_cmd: Tether) -> None:
    ok, failed = _runs(project)
    for run_id in (ok, failed):
        result = tether_cmd("show", run_id)
        assert result.code == 0, result
        assert run_id in result.out
        assert FUNCTION in result.out
        assert HOSTILE in result.out  # the step id, whole, in the table's first column
    out = tether_cmd("show", failed).out
    assert f"ValueError: {HOSTILE}" in out  # the run's error line, not styled away
    assert f"output: {json.dumps(HOSTILE)}" in tether_cmd("show", ok).out
    assert "⚠" not in out  # :warning: is text, not an emoji
    shown = json.loads(tether_cmd("show", failed, "--json").out)
    assert (
        shown["error"]["message"].endswith(f"ValueError: {HOSTILE}")
        and shown["steps"][0]["id"] == HOSTILE
    )


def test_runs_send_cancel_replay_and_errors_print_hostile_ids(
    project: tuple[Path, str], tether_cmd: Tether
) -> None:
    ok, _ = _runs(project)
    listed = tether_cmd("runs")
    assert listed.code == 0 and RUN_ID in listed.out and FUNCTION in listed.out

    sent = tether_cmd("send", "hostile_app.py", EVENT, "--id", "[red]event-id[/]")
    assert sent.code == 0, sent
    assert "event [red]event-id[/]: started runs" in sent.out

    queued = tether.Harness(project[1])
    queued.function(id=FUNCTION)(lambda ctx: None)
    handle = queued.enqueue(FUNCTION, run_id="[bold]q[/foo]")
    queued.close()
    cancelled = tether_cmd("cancel", handle.run_id)
    assert cancelled.code == 0 and "run [bold]q[/foo]: cancelled" in cancelled.out
    again = tether_cmd("cancel", handle.run_id)
    assert again.code == 1 and "run [bold]q[/foo] is already cancelled" in again.err

    replayed = tether_cmd("replay", ok, "--from-step", HOSTILE)
    assert replayed.code == 0 and f"replay of {RUN_ID} queued as run" in replayed.out

    missing = tether_cmd("show", "[/nope]")  # the error handler prints the id as text
    assert missing.code == 1 and "run '[/nope]' does not exist" in missing.err
    bad = tether_cmd("replay", ok, "--from-step", "[/missing-step]")
    assert bad.code == 1 and "[/missing-step]" in bad.err


def test_check_replay_prints_hostile_divergences(
    project: tuple[Path, str], tether_cmd: Tether
) -> None:
    _runs(project)
    app = project[0] / "hostile_app.py"
    app.write_text(
        app.read_text().replace("ctx.step.run(HOSTILE,", "ctx.step.run('[/x]' + HOSTILE,")
    )
    result = tether_cmd("check-replay", "hostile_app.py")
    assert result.code == 1, result
    assert "diverged" in result.out and RUN_ID in result.out and FUNCTION in result.out
    assert HOSTILE in result.out and "[/x]" + HOSTILE in result.out

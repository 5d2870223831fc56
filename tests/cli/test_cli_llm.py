"""``tether llm holds`` / ``tether llm clear``: the breakers that workers share through the
store, listed and cleared from the shell (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

import tether
from tether.cli import app
from tether.cli import llm as cli_llm

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
HELD = "openai:gpt-4.1-mini"
BROKEN = "anthropic:claude-haiku-4-5"
ODD = "openai-compatible:http://127.0.0.1:9/v1#[red]x[/foo]"  # markup in user data


@pytest.fixture
def harness(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tether.Harness]:
    monkeypatch.setattr(cli_llm.console, "width", 250)
    th = tether.Harness(store_url)
    breaker = th.circuit_breaker
    breaker.hold(HELD, 600)  # capped to max_hold (60 s)
    for _ in range(5):
        breaker.record_failure(BROKEN)
    breaker.hold(ODD, 30)
    breaker.hold("openai:gpt-4.1", 1)
    breaker.clear("openai:gpt-4.1")  # known to the store, but nothing to report
    yield th
    th.close()


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@BACKENDS
def test_holds_lists_held_and_open_models(harness: tether.Harness, store_url: str) -> None:
    rows = json.loads(_invoke("llm", "holds", "-s", store_url, "--json"))
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {HELD, BROKEN, ODD}
    assert by_model[HELD]["held"] and by_model[HELD]["hold_asked_s"] == 600
    assert by_model[HELD]["hold_until"].endswith("Z") and by_model[HELD]["state"] == "closed"
    assert by_model[BROKEN]["state"] == "open" and by_model[BROKEN]["open_until"]
    assert {
        r["model"] for r in json.loads(_invoke("llm", "holds", "-s", store_url, "--all", "--json"))
    } == {
        HELD,
        BROKEN,
        ODD,
        "openai:gpt-4.1",
    }

    table = _invoke("llm", "holds", "-s", store_url)
    assert HELD in table and BROKEN in table
    assert ODD in table  # printed as written: not read as markup
    assert "a 429 asked for 600s of quiet" in table
    row = next(line for line in table.splitlines() if HELD in line)
    left = re.search(r"\(in (\d+)s\)", row)
    assert left is not None and 45 <= int(left.group(1)) <= 60  # capped: not 600


@BACKENDS
def test_clear_drops_a_hold_so_every_worker_calls_the_model_again(
    harness: tether.Harness, store_url: str
) -> None:
    out = _invoke("llm", "clear", HELD, "-s", store_url)
    assert f"{HELD}: cleared (was closed, held)" in out
    worker = tether.Harness(store_url)  # another process's view of the store
    try:
        assert worker.circuit_breaker.before_call(HELD).allowed
    finally:
        worker.close()
    out = _invoke("llm", "clear", HELD, "-s", store_url)
    assert "nothing changed" in out

    out = _invoke("llm", "clear", "--all", "-s", store_url, "--json")
    assert {r["model"] for r in json.loads(out) if r["cleared"]} == {BROKEN, ODD}
    assert json.loads(_invoke("llm", "holds", "-s", store_url, "--json")) == []
    assert "no rate-limit holds and no open circuits" in _invoke("llm", "holds", "-s", store_url)


def test_clear_needs_a_model_or_all() -> None:
    result = CliRunner().invoke(app, ["llm", "clear"])
    assert result.exit_code == 2 and "name one MODEL, or pass --all" in result.output
    result = CliRunner().invoke(app, ["llm", "clear", HELD, "--all"])
    assert result.exit_code == 2

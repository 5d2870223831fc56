"""``tether subject list|show|export|forget``: on a real store file, through ``main()``;
a subject with nothing kept is an error that creates nothing, forget asks first unless
``--yes``, and stored text that looks like Rich markup is printed as written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import tether
from tests.cli.conftest import Tether

HOSTILE = r"[red]lost[/red] list[str] [/foo] :warning:"
SUBJECT = "user:[bold]42"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TETHER_STORE", url)
    th = tether.Harness(url, embedder=None)

    @th.function(id="chat", subject="event.data.user")
    def chat(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("hear", lambda: ctx.event.data["text"]))

    th.run("chat", {"user": SUBJECT, "text": HOSTILE})
    subject = th.subject(SUBJECT)
    subject.preferences["tone"] = HOSTILE
    subject.memory.add("prefers " + HOSTILE)
    th.subject("user:7").preferences["lang"] = "fr"
    th.close()
    return url


def test_list_show_and_export_print_stored_text_as_written(
    store: str, tether_cmd: Tether, tmp_path: Path
) -> None:
    listed = tether_cmd("subject", "list", "--json")
    assert listed.code == 0, listed.err
    assert json.loads(listed.out) == ["user:7", SUBJECT]
    text = tether_cmd("subject", "list")
    assert SUBJECT in text.out and "2 subject(s)" in text.out

    shown = tether_cmd("subject", "show", SUBJECT)
    assert shown.code == 0, shown.err
    assert SUBJECT in shown.out
    assert HOSTILE in shown.out  # the preference, the memory and no markup applied
    assert "memories: 1 current" in shown.out and "runs: 1, events: 0" in shown.out
    as_json = json.loads(tether_cmd("subject", "show", SUBJECT, "--json").out)
    assert as_json["preferences"] == {"tone": HOSTILE}
    assert [m["text"] for m in as_json["memories"]] == ["prefers " + HOSTILE]
    assert [r["function_id"] for r in as_json["runs"]] == ["chat"]

    exported = tether_cmd("subject", "export", SUBJECT)
    doc = json.loads(exported.out)
    assert doc["subject"] == SUBJECT and doc["runs"][0]["output"] == HOSTILE
    target = tmp_path / "out.json"
    written = tether_cmd("subject", "export", SUBJECT, "--output", str(target))
    assert written.code == 0 and json.loads(target.read_text())["preferences"] == {"tone": HOSTILE}


def test_forget_asks_first_and_deletes_everything_with_yes(
    store: str, tether_cmd: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    refused = tether_cmd("subject", "forget", SUBJECT)
    assert refused.code == 1 and "nothing deleted" in refused.out
    assert tether_cmd("subject", "show", SUBJECT).code == 0  # still there

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    confirmed = tether_cmd("subject", "forget", SUBJECT, "--json")
    assert confirmed.code == 0, confirmed.err
    result = json.loads(confirmed.out[confirmed.out.index("{") :])
    assert result["forgotten"] == {
        "memories": 1,
        "windows": 0,
        "items": 0,
        "preferences": 1,
        "runs": 1,
        "events": 0,
    }
    assert result["erased"] is True
    assert json.loads(tether_cmd("subject", "list", "--json").out) == ["user:7"]

    quiet = tether_cmd("subject", "forget", "user:7", "--yes")
    assert quiet.code == 0 and "forgot subject user:7: 0 memories" in quiet.out


def test_a_subject_with_nothing_kept_or_a_bad_id_is_an_error_that_creates_nothing(
    store: str, tether_cmd: Tether
) -> None:
    for command in (["show"], ["export"], ["forget", "--yes"]):
        result = tether_cmd("subject", *command, "user:nobody")
        assert result.code == 1, (command, result.out)
        assert "nothing is kept about subject 'user:nobody'" in result.err
    bad = tether_cmd("subject", "show", "a/b")
    assert bad.code == 1 and "is not a subject id" in bad.err
    assert json.loads(tether_cmd("subject", "list", "--json").out) == ["user:7", SUBJECT]


def test_subject_commands_refuse_a_missing_store(tmp_path: Path, tether_cmd: Tether) -> None:
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    result = tether_cmd("subject", "list", "--store", missing)
    assert result.code == 1 and "no tether store" in result.err
    assert not (tmp_path / "nope.db").exists()

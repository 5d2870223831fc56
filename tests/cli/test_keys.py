"""``tether keygen`` prints keys the store takes; ``tether rekey`` finishes a rotation (and
encrypts what was written in clear); ``tether runs`` on an encrypted store needs its key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether.cli import app

pytest.importorskip("cryptography")


def test_keygen_rekey_and_reading_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["keygen"])
    second = runner.invoke(app, ["keygen"])
    assert first.exit_code == 0 and second.exit_code == 0
    old, new = first.output.strip(), second.output.strip()
    assert old != new and len(base64.urlsafe_b64decode(old)) == 32

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    monkeypatch.setenv("TETHER_STORE", url)
    with tether.Harness(url, encryption_key=old) as th:
        th.function(id="echo")(lambda ctx: ctx.event.data["t"])
        th.run("echo", {"t": "kept secret"}, run_id="r1")

    monkeypatch.delenv("TETHER_ENCRYPTION_KEY", raising=False)
    missing = runner.invoke(app, ["runs"])  # main() prints this message and exits 1
    assert isinstance(missing.exception, tether.EncryptionKeyError)
    assert "TETHER_ENCRYPTION_KEY" in str(missing.exception)
    assert old not in str(missing.exception)

    monkeypatch.setenv("TETHER_ENCRYPTION_KEY", f"{new},{old}")
    done = runner.invoke(app, ["rekey"])
    assert done.exit_code == 0, done.output
    assert (
        "rewritten under the first key" in done.output and "runs: 2" in done.output
    )  # input and output

    monkeypatch.setenv("TETHER_ENCRYPTION_KEY", new)  # the old key retired
    shown = runner.invoke(app, ["show", "r1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert "kept secret" in shown.output
    for output in (done.output, shown.output):  # no command prints a key but keygen
        assert old not in output and new not in output

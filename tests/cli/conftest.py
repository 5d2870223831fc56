"""CLI fixtures: the ``tether`` command run in-process through ``main()`` (its error
handler included), with stdout and stderr captured."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tether.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


Tether = Callable[..., Result]


@pytest.fixture
def tether_cmd(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Tether:
    """``tether_cmd("runs", "--json")``: exit code, stdout and stderr of that command line."""
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["tether", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run

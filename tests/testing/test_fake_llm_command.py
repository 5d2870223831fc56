"""``tether fake-llm``: FakeLLMServer in a process of its own, scripted by file and over HTTP,
answering another process's tether calls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether import llm


class Served:
    def __init__(self, proc: subprocess.Popen[str], lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines

    @property
    def url(self) -> str:
        head = self.lines[0]
        return head.split(" on ", 1)[1].split(" ", 1)[0]


def _serve(*args: str) -> Served:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "fake-llm", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("serving until"):
            break
    else:
        raise AssertionError(f"fake-llm did not start: {proc.stderr.read() if proc.stderr else ''}")
    return Served(proc, lines)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "faults.json"
    path.write_text(
        json.dumps(
            [
                {"fault": "rate_limit", "retry_after_ms": 50, "match": "[a]"},
                {"reply": '{"label": "billing"}', "match": "[a]"},
                {"fault": "auth", "match": "[b]"},
            ]
        )
    )
    return path


@pytest.fixture
def served(script: Path) -> Iterator[Served]:
    served = _serve("--script", str(script))
    yield served
    if served.proc.poll() is None:
        served.proc.kill()
        served.proc.wait(timeout=5)
    for stream in (served.proc.stdout, served.proc.stderr):
        if stream is not None:
            stream.close()


def test_fake_llm_serves_a_script_to_another_process(served: Served) -> None:
    url = served.url
    assert url.startswith("http://127.0.0.1:")
    assert f"export OPENAI_BASE_URL={url}/v1" in served.lines
    model = f"openai-compatible:{url}/v1#tiny"
    breaker = llm.CircuitBreaker()
    resp = llm.complete(model, "[a] charged twice", circuit=breaker)
    assert resp.text == '{"label": "billing"}'
    assert [a.error_class for a in resp.attempts] == ["rate_limited", None]
    with pytest.raises(llm.LLMCallFailed) as info:
        llm.complete(model, "[b] hello", circuit=breaker)
    assert info.value.kind == llm.ErrorKind.AUTH

    # scripted again at run time, through the admin endpoint
    body = json.dumps([{"fault": "server_error", "match": "[c]"}]).encode()
    request = urllib.request.Request(
        f"{url}/_tether/script", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert json.loads(reply.read()) == {"pending": 1}
    resp = llm.complete(model, "[c] retry me", circuit=breaker)
    assert [a.error_class for a in resp.attempts] == ["server_error", None]
    with urllib.request.urlopen(f"{url}/_tether/requests", timeout=5) as reply:
        outcomes = [r["outcome"] for r in json.loads(reply.read())]
    assert outcomes == ["rate_limit", "reply", "auth", "server_error", "reply"]

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=10) == 0
    assert served.proc.stdout is not None
    assert "stopped after 5 request(s)" in served.proc.stdout.read()


def test_fake_llm_stops_on_ctrl_c(served: Served) -> None:
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(timeout=10) == 0


def _fails(args: list[str], tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "fake-llm", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 2, done
    return " ".join(done.stderr.split())


def test_a_bad_script_is_refused_before_serving(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"fault": "meteor [/x]"}]')
    assert "script entry #1: unknown fault 'meteor [/x]'" in _fails(
        ["--script", str(bad)], tmp_path
    )
    bad.write_text("[{")
    assert "is not JSON" in _fails(["--script", str(bad)], tmp_path)
    assert "cannot read the script" in _fails(["--script", str(tmp_path / "none.json")], tmp_path)


def test_fake_llm_binds_loopback_only(tmp_path: Path) -> None:
    assert "loopback only" in _fails(["--host", "0.0.0.0"], tmp_path)

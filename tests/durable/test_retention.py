"""Scheduled retention: ``Harness(retention=...)`` validated at once, applied by a built-in
cron function that any worker runs, one run per tick across worker processes."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.durable.retention import RETENTION_FN
from tether.store.sql import SQLStore
from tether.testing.history import fill_history


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"run": "30d"}, ["'run'", "did you mean 'runs'?", "'events'"]),
        ({"runs": "thirty days"}, ["retention=['runs']", "'30s', '5m'", "{'runs': '30d'}"]),
        ({"runs": 0}, ["would prune everything", "above zero"]),
        ({"runs": "30d", "schedule": "hourly"}, ["not a cron expression", "five fields"]),
        ({"runs": "30d", "keep_experiments": "all"}, ["keep_experiments='all'", "integer"]),
        ({"schedule": "0 * * * *"}, ["names no kind", "{'runs': '30d'}"]),
        (["runs"], ["takes a mapping"]),
    ],
)
def test_bad_retention_names_the_fix(tmp_path: Path, config: Any, says: list[str]) -> None:
    with pytest.raises(tether.ConfigurationError) as caught:
        tether.Harness(f"sqlite:///{tmp_path / 'x.db'}", retention=config)
    for text in says:
        assert text in str(caught.value)
    assert not (tmp_path / "x.db").exists()  # nothing opened, nothing written


def test_retention_registers_a_cron_function_outside_the_code_version(tmp_path: Path) -> None:
    plain = tether.Harness(f"sqlite:///{tmp_path / 'a.db'}")
    kept = tether.Harness(
        f"sqlite:///{tmp_path / 'b.db'}", retention={"runs": "30d", "events": "7d"}
    )
    for th in (plain, kept):
        th.function(id="app")(lambda ctx: None)
    fn = kept.functions[RETENTION_FN]
    assert [c.expression for c in fn.crons] == ["17 * * * *"] and fn.crons[0].skip_missed
    assert kept.retention is not None and kept.retention.older_than == {
        "runs": 30 * 86400.0,
        "events": 7 * 86400.0,
    }
    assert plain.version == kept.version  # turning retention on strands no run
    plain.close()
    kept.close()


def test_the_cron_function_prunes_each_kind_by_its_own_age(vth: tether.Harness) -> None:
    th = tether.Harness(vth.store, clock=vth.clock, retention={"runs": "30d", "breakers": "1d"})
    assert isinstance(th.store, SQLStore)
    fill_history(th.store, 20, ended_at=vth.clock.now() - 10 * 86400)  # 10 days: kept
    th.circuit_breaker.hold("m:old", 1)
    vth.clock.advance(2 * 86400)  # type: ignore[attr-defined]
    out = th.run(RETENTION_FN)
    assert out["runs"] == 0 and out["breakers"] == 1 and "events" not in out
    vth.clock.advance(25 * 86400)  # type: ignore[attr-defined]
    assert th.run(RETENTION_FN)["runs"] == 20
    th.close()


WORKER = """
import sys, tether
th = tether.Harness(sys.argv[1], retention={"runs": "30d", "schedule": "* * * * * */2"})
th.worker().run()
"""


def test_two_worker_processes_run_each_tick_once(tmp_path: Path, store_url: str) -> None:
    th = tether.Harness(store_url)
    assert isinstance(th.store, SQLStore)
    fill_history(th.store, 3000, ended_at=1000.0)
    (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(tmp_path / "worker.py"), store_url],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=out,
                )
            )
    try:
        deadline = time.monotonic() + 45
        while True:
            done = [r for r in th.list_runs(function_id=RETENTION_FN) if r.status == "completed"]
            if len(done) >= 4:
                break
            assert time.monotonic() < deadline, "no retention run completed"
            assert all(p.poll() is None for p in procs), [g.read_text() for g in logs]
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    runs = th.list_runs(function_id=RETENTION_FN, limit=1000)
    ticks = sorted(int(r.id.rsplit(":", 1)[1]) for r in runs)
    assert len(ticks) == len(set(ticks))  # one run per tick, whatever the workers
    assert all(b - a == 2 for a, b in itertools.pairwise(ticks))  # none skipped
    finished = [th.get_run(r.id) for r in runs if r.status == "completed"]
    assert sum(r.output["runs"] for r in finished) == 3000  # each deleted once
    assert all(len(r.steps) == 1 for r in finished)
    store = th.store
    assert isinstance(store, SQLStore)
    assert store.read("SELECT count(*) FROM takeovers")[0][0] == 0  # no tick ran twice
    assert store.read("SELECT count(*) FROM runs WHERE function_id='old'")[0][0] == 0
    th.close()


def test_the_readme_retention_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "retention={" in b)
    monkeypatch.chdir(tmp_path)
    th = tether.Harness(f"sqlite:///{tmp_path / 'readme.db'}")
    namespace: dict[str, Any] = {"tether": tether, "th": th}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"]["runs"] == 0 and namespace["th"].retention is not None
    th.close()
    namespace["th"].close()

"""examples/cron_report.py: one report per daily tick, with the tick in the run id."""

from __future__ import annotations

from pathlib import Path

from tests.examples.conftest import run_example


def test_three_days_make_three_reports(tmp_path: Path) -> None:
    out = run_example("cron_report.py", tmp_path)
    lines = out.splitlines()
    assert lines[-1] == "3 reports, one per tick"
    assert [line.split(": ", 1)[1] for line in lines[:3]] == [
        "2029-12-31: 33 orders, $5610.00",
        "2030-01-01: 3 orders, $60.00",
        "2030-01-02: 4 orders, $100.00",
    ]
    assert all(line.startswith("cron:daily-report#0:") for line in lines[:3])

"""Where an experiment lives in the store, with no table of its own.

- The experiment is a run of ``tether.eval.experiment`` with id ``eval-<key>`` (``key``: a
  hash of the experiment's name). Its input is the definition (name, evaluation, code
  version, dataset hash, scorers, repeat, number of cases); its first step records the
  case ids in order; then it waits for the ``tether/eval.finished`` event, so the run is
  ``waiting`` while the experiment is in progress (or was interrupted) and ``completed``
  once it finished, with the summary in its output.
- Each (case, repeat) is a run of ``tether.eval.case`` with id ``eval-<key>-<case>-<repeat>``
  whose output is the case's record: output, scores, status, task run id, latency, usage
  and cost. A registered task runs as ``<that id>-task``.

These functions only read; ``runner.py`` writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tether.codec import loads
from tether.errors import ConfigurationError
from tether.evals.dataset import short_hash
from tether.records import Run
from tether.store import Store

EXPERIMENT_FN = "tether.eval.experiment"
CASE_FN = "tether.eval.case"
FINISHED_EVENT = "tether/eval.finished"
CASES_STEP = "cases"


def experiment_key(experiment: str) -> str:
    return short_hash(experiment, 16)


def experiment_run_id(experiment: str) -> str:
    return f"eval-{experiment_key(experiment)}"


def case_run_id(experiment: str, case_id: str, repeat: int) -> str:
    return f"eval-{experiment_key(experiment)}-{short_hash(case_id, 12)}-{repeat}"


def task_run_id(case_run: str) -> str:
    return f"{case_run}-task"


@dataclass(frozen=True, slots=True)
class ExperimentInfo:
    """An experiment as stored: its definition, status and (once finished) summary."""

    name: str
    evaluation: str
    code_version: str
    dataset_hash: str
    scorers: list[str]
    repeat: int
    cases: int
    task: str
    created_at: datetime
    status: str  # "running" (in progress or interrupted) | "completed"
    summary: dict[str, Any] | None
    run_id: str

    @classmethod
    def from_run(cls, run: Run) -> ExperimentInfo:
        d = run.input or {}
        out = run.output if isinstance(run.output, dict) else {}
        return cls(
            name=d.get("experiment", ""),
            evaluation=d.get("evaluation", ""),
            code_version=d.get("code_version", ""),
            dataset_hash=d.get("dataset_hash", ""),
            scorers=list(d.get("scorers", [])),
            repeat=int(d.get("repeat", 1)),
            cases=int(d.get("cases", 0)),
            task=d.get("task", ""),
            created_at=run.created_at,
            status="completed" if run.status == "completed" else "running",
            summary=out.get("summary"),
            run_id=run.id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "evaluation": self.evaluation,
            "code_version": self.code_version,
            "dataset_hash": self.dataset_hash,
            "scorers": self.scorers,
            "repeat": self.repeat,
            "cases": self.cases,
            "task": self.task,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "summary": self.summary,
            "run_id": self.run_id,
        }


def find_experiment(store: Store, experiment: str) -> ExperimentInfo | None:
    run = store.get_run(experiment_run_id(experiment))
    if run is None or run.function_id != EXPERIMENT_FN:
        return None
    return ExperimentInfo.from_run(run)


def get_experiment(store: Store, experiment: str) -> ExperimentInfo:
    info = find_experiment(store, experiment)
    if info is None:
        raise ConfigurationError(
            f"no experiment named {experiment!r} in {store.url}; list them with "
            "evals.list_experiments(th)"
        )
    return info


def case_ids(store: Store, experiment: str) -> list[str]:
    """The experiment's case ids in order (recorded by its first step)."""
    steps = store.load_steps(experiment_run_id(experiment))
    row = steps.get(CASES_STEP)
    if row is None or row.output is None:
        return []
    return list(loads(row.output))


def list_experiments(
    store: Store, evaluation: str | None = None, limit: int = 50, before: str | None = None
) -> list[ExperimentInfo]:
    """Experiments newest first (``before``: the ``run_id`` of the last one of the previous
    page); ``evaluation`` keeps those of one evaluation."""
    out: list[ExperimentInfo] = []
    cursor = before
    while len(out) < limit:
        page = store.list_runs(EXPERIMENT_FN, None, max(limit, 50), cursor)
        if not page:
            break
        for run in page:
            info = ExperimentInfo.from_run(run)
            if evaluation is None or info.evaluation == evaluation:
                out.append(info)
                if len(out) == limit:
                    break
        cursor = page[-1].id
    return out


def case_records(
    store: Store, experiment: str, ids: list[str], repeat: int, start: int = 0
) -> Iterator[tuple[int, str, int, str, dict[str, Any] | None]]:
    """(index, case id, repeat, case run id, record) per (case, repeat) in case order, read
    one at a time; ``record`` is None for a case not run yet."""
    for index in range(start, len(ids) * repeat):
        cid, r = ids[index // repeat], index % repeat
        rid = case_run_id(experiment, cid, r)
        yield index, cid, r, rid, read_record(store, rid)


def read_record(store: Store, rid: str) -> dict[str, Any] | None:
    row = store.run_result(rid)
    if row is None:
        return None
    status, output, error = row
    if status == "completed" and output is not None:
        value = loads(output)
        return value if isinstance(value, dict) else None
    if status in ("failed", "cancelled"):
        err = loads(error) if error else {"type": status, "message": status}
        return {
            "status": "error",
            "output": None,
            "error": {"type": err.get("type"), "message": err.get("message")},
            "scores": {},
            "run_id": rid,
            "latency_s": None,
            "usage": {},
            "cost_usd": None,
        }
    return None


__all__ = [
    "CASE_FN",
    "EXPERIMENT_FN",
    "FINISHED_EVENT",
    "ExperimentInfo",
    "case_ids",
    "case_records",
    "case_run_id",
    "experiment_run_id",
    "find_experiment",
    "get_experiment",
    "list_experiments",
    "read_record",
    "task_run_id",
]

"""Conversions between stored rows and the public records (shared by every backend)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tether.codec import dumps, loads
from tether.records import Attempt, Run, RunStatus, Step
from tether.store.payloads import IDENTITY, PayloadCodec


def ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def event_json(name: str, data: Any, event_id: str | None, event_ts: float | None) -> str:
    return dumps({"name": name, "data": data, "id": event_id, "ts": event_ts})


def build_run(
    row: Sequence[Any],
    steps: Sequence[Sequence[Any]],
    attempts: Sequence[Any],
    codec: PayloadCodec = IDENTITY,
) -> Run:
    """``row`` follows ``queries.RUN_COLUMNS`` (id, function_id, status, input, event_name,
    output, error, created_at, started_at, ended_at, parent_id, replay_of, version, reason,
    subject),
    ``steps`` ``RUN_STEPS_SQL`` and ``attempts`` ``RUN_ATTEMPTS_SQL``; payloads as stored."""

    def _maybe_json(stored: Any) -> Any:
        return None if stored is None else loads(codec.decode(stored))

    by_step: dict[str, list[Attempt]] = {}
    for step_id, number, started, ended, etype, emsg, tb in attempts:
        by_step.setdefault(step_id, []).append(
            Attempt(
                number=number,
                started_at=ts(started),
                ended_at=ts(ended),
                error_type=etype,
                error_message=codec.decode_opt(emsg),
                traceback=codec.decode_opt(tb),
            )
        )
    out_steps = []
    for step_id, kind, status, output, error, started, ended in steps:
        tries = by_step.get(step_id, [])
        if status in ("completed",) and kind == "run":
            tries = [*tries, Attempt(number=len(tries), started_at=ts(started), ended_at=ts(ended))]
        out_steps.append(
            Step(
                id=step_id,
                kind=kind,
                status=status,
                output=_maybe_json(output),
                error=_maybe_json(error) if status == "failed" else None,
                started_at=ts(started),
                ended_at=ts(ended),
                attempts=tries,
            )
        )
    created = ts(row[7])
    assert created is not None
    return Run(
        id=row[0],
        function_id=row[1],
        status=RunStatus(row[2]),
        input=_maybe_json(row[3]),
        event_name=row[4],
        output=_maybe_json(row[5]),
        error=_maybe_json(row[6]),
        created_at=created,
        started_at=ts(row[8]),
        ended_at=ts(row[9]),
        parent_id=row[10],
        replay_of=row[11],
        version=row[12],
        reason=row[13],
        subject=row[14] if len(row) > 14 else None,
        steps=out_steps,
    )

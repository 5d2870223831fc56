"""atheris fuzz targets for tether's hostile-input surfaces (``pip install "tether[fuzz]"``).

    python -m tests.fuzz.targets TARGET [libFuzzer options, e.g. -max_total_time=60]

Targets: ``events`` (event ingestion's validation), ``expr`` (``where=`` / ``if_=``
expressions), ``dataset`` (a ``.jsonl`` / ``.csv`` file's bytes), ``audit`` (a Python
file for the code audit), ``decode`` (stored text handed to the encrypting codec). Each
accepts only tether's typed errors; anything else is a crash atheris reports with the
input that caused it. ``tests/fuzz/test_fuzz.py`` runs each for a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

# Coverage feedback from the modules under test only (instrumenting all of tether's
# imports would take minutes).
with atheris.instrument_imports(
    include=[
        "tether.durable.intake",
        "tether.flow.expr",
        "tether.flow.keys",
        "tether.evals.dataset",
        "tether.audit",
        "tether.store.encryption",
    ]
):
    import tether.audit.scan
    import tether.durable.intake
    import tether.evals.dataset
    import tether.flow.expr
    import tether.store.encryption  # noqa: F401
    from tether.errors import ConfigurationError, EncryptionError, InvalidEventError


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None


def events(data: bytes) -> None:
    from tether.clock import Clock
    from tether.durable.intake import Intake
    from tether.durable.registry import Registry
    from tether.durable.runs import RunFactory

    clock = Clock()
    intake = Intake(Registry(None), RunFactory(clock, lambda: "v"), lambda: None, clock)  # type: ignore[arg-type, return-value]
    value = _json(data)
    with contextlib.suppress(InvalidEventError):
        intake.rows(value)


def expr(data: bytes) -> None:
    from tether.flow.expr import compile_expr, evaluate

    fdp = atheris.FuzzedDataProvider(data)
    source = fdp.ConsumeUnicodeNoSurrogates(200)
    event = _json(fdp.ConsumeBytes(200))
    try:
        compile_expr(source)
    except ConfigurationError:
        return
    result = evaluate(source, event={"name": "e", "data": event, "id": "1"}, async_={"data": event})
    assert isinstance(result, bool)


TMP = Path(tempfile.mkdtemp(prefix="tether-fuzz-"))


def dataset(data: bytes) -> None:
    from tether.evals import Dataset

    suffix = ".csv" if data[:1] == b"," else ".jsonl"
    path = TMP / f"cases{suffix}"
    path.write_bytes(data[1:])
    with contextlib.suppress(ConfigurationError):
        Dataset.from_file(path)


def audit(data: bytes) -> None:
    from tether.audit import code

    path = TMP / "app.py"
    path.write_bytes(data)
    report = code(path, root=TMP)
    assert report.files == 1


_CODEC: Any = None


def decode(data: bytes) -> None:
    global _CODEC
    from tether.store.encryption import PREFIX, EncryptingCodec

    if _CODEC is None:
        _CODEC = EncryptingCodec("A" * 43 + "=")
    text = data.decode("utf-8", "replace")
    for stored in (text, PREFIX + text, f"{PREFIX}m{_CODEC.write_id}:{text}"):
        with contextlib.suppress(EncryptionError):
            _CODEC.decode(stored)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "events": events,
    "expr": expr,
    "dataset": dataset,
    "audit": audit,
    "decode": decode,
}


def main() -> None:
    name = sys.argv[1]
    target = TARGETS[name]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Hostile dataset files (evals/dataset.py): any bytes in a ``.jsonl`` or ``.csv`` file
either load as cases or fail with a ``ConfigurationError`` naming the file, never another
exception; what loads is JSON a run can store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tether import ConfigurationError, evals

FAST = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

json_lines = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.builds(
            lambda i, e, m, k: json.dumps({"input": i, "expected": e, "metadata": m, "id": k}),
            st.text(max_size=5) | st.integers() | st.none(),
            st.text(max_size=5) | st.none(),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2) | st.text(max_size=3),
            st.text(max_size=4) | st.integers() | st.none() | st.lists(st.integers(), max_size=1),
        ),
        st.sampled_from(
            [
                '{"input": NaN}',
                '{"input": Infinity}',
                "[" * 5000,
                '{"input": 1e999}',
                '{"id": "a", "input": 1}',
                '"just a string"',
                '{"input": {"a": -0.0}}',
            ]
        ),
    ),
    max_size=5,
).map("\n".join)
raw_bytes = st.binary(max_size=200)


def _load(path: Path) -> None:
    try:
        dataset = evals.Dataset.from_file(path)
    except ConfigurationError as exc:
        assert path.name in str(exc)
        return
    for case in dataset:
        json.dumps([case.input, case.expected, case.metadata], allow_nan=False)
        assert case.id


@FAST
@given(text=json_lines)
@example(text="[" * 100_000)
def test_any_jsonl_text_loads_or_is_a_configuration_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(text, encoding="utf-8")
    _load(path)


@FAST
@given(data=raw_bytes, suffix=st.sampled_from([".jsonl", ".csv"]))
@example(data=b"\xff\xfe\x00bad", suffix=".jsonl")
@example(data=b"input\n\xff", suffix=".csv")
@example(data=b"input\n" + b"a" * 200_000, suffix=".csv")
@example(data=b"input,id\n\x00,1\n", suffix=".csv")
@example(data=b"input,input\n1,2\n", suffix=".csv")
def test_any_bytes_load_or_are_a_configuration_error(
    tmp_path: Path, data: bytes, suffix: str
) -> None:
    path = tmp_path / f"cases{suffix}"
    path.write_bytes(data)
    _load(path)


csv_cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@FAST
@given(
    header=st.lists(
        st.sampled_from(["input", "expected", "metadata", "id", "x", ""]) | csv_cells,
        min_size=1,
        max_size=4,
    ),
    rows=st.lists(st.lists(csv_cells, min_size=0, max_size=5), max_size=4),
)
def test_any_csv_table_loads_or_is_a_configuration_error(
    tmp_path: Path, header: list[str], rows: list[list[str]]
) -> None:
    import csv

    path = tmp_path / "cases.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    _load(path)


@pytest.mark.parametrize("name", ["cases.txt", "cases"])
def test_an_unknown_format_is_named(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="unknown dataset format"):
        evals.Dataset.from_file(path)

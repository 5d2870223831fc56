"""Datasets from JSONL, CSV and code: ids, hashes, the task's data, and malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from tether import ConfigurationError, evals


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_cases_ids_and_a_hash_stable_across_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cases.jsonl",
        [
            json.dumps({"input": {"text": "refund please"}, "expected": "billing", "id": "a"}),
            "",
            json.dumps({"input": "hello", "metadata": {"lang": "en"}}),
        ],
    )
    first = evals.Dataset.from_file(path)
    assert first[0].id == "a" and len(first) == 2
    assert first[0].input == {"text": "refund please"} and first[0].expected == "billing"
    assert first[1].metadata == {"lang": "en"} and first[1].expected is None
    # the same content elsewhere: the same ids and hash
    again = evals.Dataset.from_file(write(tmp_path / "copy.jsonl", path.read_text().splitlines()))
    assert again.hash == first.hash and again.ids == first.ids
    assert len(first.hash) == 12
    # any change of content changes the hash
    changed = evals.Dataset([evals.Case({"text": "refund please"}, "other", id="a"), first[1]])
    assert changed.hash != first.hash


def test_a_case_id_defaults_to_a_stable_hash_of_the_case() -> None:
    a = evals.Case({"q": 1}, "x", {"k": "v"})
    b = evals.Case({"q": 1}, "x", {"k": "v"})
    c = evals.Case({"q": 2}, "x", {"k": "v"})
    assert a.id == b.id != c.id and len(a.id) == 16
    assert evals.Case("text", id="mine").id == "mine"


def test_the_task_data_is_the_input_object_or_wraps_another_value() -> None:
    assert evals.Case({"text": "hi"}).run_data() == {"text": "hi"}
    assert evals.Case("hi").run_data() == {"input": "hi"}
    assert evals.Case([1, 2]).run_data() == {"input": [1, 2]}


def test_pydantic_inputs_are_stored_as_json() -> None:
    class Ticket(BaseModel):
        text: str

    case = evals.Case(Ticket(text="hi"), expected=Ticket(text="ok"))
    assert case.input == {"text": "hi"} and case.expected == {"text": "ok"}


def test_csv_with_an_input_column_and_without(tmp_path: Path) -> None:
    with_input = write(
        tmp_path / "a.csv",
        [
            "id,input,expected,metadata,source",
            'one,"{""text"": ""refund""}",billing,"{""lang"": ""en""}",mail',
            "two,plain text,,,",
        ],
    )
    ds = evals.Dataset.from_file(with_input)
    assert ds[0].id == "one" and ds[0].input == {"text": "refund"}
    assert ds[0].expected == "billing" and ds[0].metadata == {"source": "mail", "lang": "en"}
    assert ds[1].input == "plain text" and ds[1].expected is None
    columns = write(tmp_path / "b.csv", ["question,expected", "what is 2+2?,4"])
    ds = evals.Dataset.from_file(columns)
    assert ds[0].input == {"question": "what is 2+2?"} and ds[0].expected == "4"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"input": 1}', '{"input": 2}', '{"input": 3, oops}'], "line 3 is not JSON"),
        (['{"input": 1}', "[1, 2]"], "line 2 is a list, not an object"),
        (['{"input": 1}', '{"inptu": 2}'], "line 2 has unknown keys ['inptu']"),
        (['{"expected": 1}'], 'line 1 has no "input"'),
        (['{"input": 1, "id": "x"}', '{"input": 2, "id": "x"}'], "same case id 'x'"),
    ],
)
def test_a_malformed_jsonl_line_is_named_by_its_number(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        evals.Dataset.from_file(path)


def test_malformed_csv_and_files_are_clear_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", ["input,expected", "a,b", "c,d,e"])
    with pytest.raises(ConfigurationError, match="line 3 has 3 fields but the header has 2"):
        evals.Dataset.from_file(path)
    path = write(tmp_path / "meta.csv", ["input,metadata", "a,{not json"])
    with pytest.raises(ConfigurationError, match="line 2: the metadata cell is not JSON"):
        evals.Dataset.from_file(path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigurationError, match="empty"):
        evals.Dataset.from_file(tmp_path / "empty.csv")
    with pytest.raises(ConfigurationError, match="does not exist"):
        evals.Dataset.from_file(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigurationError, match="unknown dataset format '.txt'"):
        evals.Dataset.from_file(write(tmp_path / "x.txt", ["a"]))


def test_datasets_in_code_reject_empty_duplicate_and_non_json_cases() -> None:
    with pytest.raises(ConfigurationError, match="no cases"):
        evals.Dataset([])
    with pytest.raises(ConfigurationError, match="cases #0 and #1 have the same id"):
        evals.Dataset([evals.Case("a"), evals.Case("a")])
    with pytest.raises(ConfigurationError, match="cannot be stored as JSON"):
        evals.Case({1, 2})
    with pytest.raises(ConfigurationError, match="unknown keys"):
        evals.Dataset([{"input": 1, "answer": 2}])
    ds = evals.Dataset([{"input": 1, "expected": 2}, evals.Case(3)])
    assert ds[0].expected == 2 and ds[1].input == 3

"""Datasets of cases: from JSONL, CSV or code.

A case is ``Case(input, expected=None, metadata=None, id=None)``. Its values must be JSON
(a pydantic model is turned into its JSON form), because a case is stored with the run that
evaluates it. Without an ``id`` a case is named by a stable hash of its content, so the
same case keeps its id across runs and machines; two cases with one id are an error.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from pydantic import BaseModel

from tether.codec import _json_problem
from tether.errors import ConfigurationError

CASE_KEYS = frozenset({"id", "input", "expected", "metadata"})


def canonical(value: Any) -> str:
    """JSON text that is the same for equal values (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def short_hash(text: str, length: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _json_value(value: Any, what: str) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    problem = _json_problem(value)
    if problem is not None:
        raise ConfigurationError(
            f"{what} holds {problem}, which cannot be stored as JSON: use JSON values "
            "(dict, list, str, int, float, bool, None) or a pydantic model"
        )
    return value


@dataclass(frozen=True, slots=True)
class Case:
    """One example: the task's ``input``, the ``expected`` answer (optional) and free
    ``metadata``. ``id`` defaults to a stable hash of the three."""

    input: Any
    expected: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __init__(
        self,
        input: Any,
        expected: Any = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> None:
        what = f"case {id!r}" if id else "a case"
        value = _json_value(input, f"the input of {what}")
        want = _json_value(expected, f"the expected value of {what}")
        meta = _json_value(metadata or {}, f"the metadata of {what}")
        if not isinstance(meta, dict):
            raise ConfigurationError(
                f"the metadata of {what} is a {type(meta).__name__}; use a dict"
            )
        if id is None or id == "":
            id = short_hash(canonical([value, want, meta]), 16)
        elif not isinstance(id, str):
            raise ConfigurationError(f"a case id must be a string, got {id!r}")
        object.__setattr__(self, "input", value)
        object.__setattr__(self, "expected", want)
        object.__setattr__(self, "metadata", meta)
        object.__setattr__(self, "id", id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "input": self.input,
            "expected": self.expected,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        return cls(data.get("input"), data.get("expected"), data.get("metadata"), data.get("id"))

    def run_data(self) -> dict[str, Any]:
        """The data of the task's run: the input when it is a JSON object, else
        ``{"input": value}``."""
        return self.input if isinstance(self.input, dict) else {"input": self.input}


class Dataset(Sequence[Case]):
    """An ordered list of cases with unique ids and a stable content hash."""

    def __init__(self, cases: Iterable[Case | dict[str, Any]], *, name: str | None = None):
        items: list[Case] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(cases):
            case = item if isinstance(item, Case) else _case_from_mapping(item, f"case #{index}")
            first = seen.setdefault(case.id, index)
            if first != index:
                raise ConfigurationError(
                    f"cases #{first} and #{index} have the same id {case.id!r}"
                    + (
                        " (identical content hashes to the same id)"
                        if not isinstance(item, dict) or not item.get("id")
                        else ""
                    )
                    + ": give each case a unique id, or remove the duplicate"
                )
            items.append(case)
        if not items:
            raise ConfigurationError("the dataset has no cases: add at least one Case")
        self._cases = items
        self.name = name
        self._hash: str | None = None

    @property
    def hash(self) -> str:
        """12 hex digits of SHA-256 over the cases in order: the same data, the same hash."""
        if self._hash is None:
            digest = hashlib.sha256()
            for case in self._cases:
                digest.update(canonical(case.to_dict()).encode())
                digest.update(b"\n")
            self._hash = digest.hexdigest()[:12]
        return self._hash

    @property
    def ids(self) -> list[str]:
        return [case.id for case in self._cases]

    def __len__(self) -> int:
        return len(self._cases)

    @overload
    def __getitem__(self, index: int) -> Case: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Case]: ...

    def __getitem__(self, index: int | slice) -> Case | Sequence[Case]:
        return self._cases[index]

    def __iter__(self) -> Iterator[Case]:
        return iter(self._cases)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<Dataset{label} {len(self)} cases, hash {self.hash}>"

    # -- files -----------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Dataset:
        """Read ``.jsonl`` (one ``{"input": ..., "expected": ..., "metadata": ..., "id": ...}``
        object a line) or ``.csv`` (columns ``input``, ``expected``, ``metadata``, ``id``)."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return cls.from_jsonl(p)
        if suffix == ".csv":
            return cls.from_csv(p)
        raise ConfigurationError(
            f"{p}: unknown dataset format {suffix or '(no suffix)'!r}; use a .jsonl or .csv file "
            "(or Dataset.from_jsonl / Dataset.from_csv)"
        )

    @classmethod
    def from_jsonl(cls, path: str | Path) -> Dataset:
        p = _existing(path)
        with _unreadable(p):
            return cls._jsonl(p)

    @classmethod
    def _jsonl(cls, p: Path) -> Dataset:
        cases = []
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{p}, line {lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigurationError(
                        f"{where} is not JSON ({exc.msg} at column {exc.colno}); each line "
                        'must be an object such as {"input": ..., "expected": ...}'
                    ) from None
                cases.append((_case_from_mapping(row, where), where))
        return cls(_checked_ids(cases, p), name=p.name)

    @classmethod
    def from_csv(cls, path: str | Path) -> Dataset:
        """CSV with a header row. With an ``input`` column its cell is the input (a cell that
        holds a JSON object becomes that object) and other unknown columns go to
        ``metadata``; without one, the non-reserved columns form the input object."""
        p = _existing(path)
        with _unreadable(p):
            return cls._csv(p)

    @classmethod
    def _csv(cls, p: Path) -> Dataset:
        cases = []
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise ConfigurationError(f"{p}: the CSV file is empty (no header row)") from None
            header = [h.strip() for h in header]
            for row in reader:
                lineno = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise ConfigurationError(
                        f"{p}, line {lineno} has {len(row)} fields but the header has "
                        f"{len(header)} ({', '.join(header)}); quote cells that contain commas"
                    )
                cases.append(_case_from_row(dict(zip(header, row, strict=True)), p, lineno))
        return cls(_checked_ids(cases, p), name=p.name)


@contextlib.contextmanager
def _unreadable(p: Path) -> Iterator[None]:
    """Turn what a hostile file makes the readers raise into a ``ConfigurationError``."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{p} is not UTF-8 text (byte {exc.start}): save the dataset as UTF-8"
        ) from None
    except csv.Error as exc:
        raise ConfigurationError(f"{p} is not a readable CSV file: {exc}") from None
    except RecursionError:
        raise ConfigurationError(f"{p} holds JSON nested too deeply to read") from None


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError(f"dataset file {p} does not exist")
    return p


def _checked_ids(cases: list[tuple[Case, str]], path: Path) -> list[Case]:
    if not cases:
        raise ConfigurationError(f"{path} holds no cases: add at least one line or row")
    seen: dict[str, str] = {}
    for case, where in cases:
        first = seen.setdefault(case.id, where)
        if first != where:
            raise ConfigurationError(
                f"{where} has the same case id {case.id!r} as {first}: give each case a unique "
                "id, or remove the duplicate"
            )
    return [case for case, _ in cases]


def _case_from_mapping(row: Any, where: str) -> Case:
    if not isinstance(row, dict):
        raise ConfigurationError(
            f"{where} is a {type(row).__name__}, not an object: write "
            '{"input": ..., "expected": ..., "metadata": {...}, "id": "..."}'
        )
    unknown = set(row) - CASE_KEYS
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown keys {sorted(unknown)}; a case has input, expected, "
            "metadata and id (put other fields in metadata)"
        )
    if "input" not in row:
        raise ConfigurationError(f'{where} has no "input"')
    case_id = row.get("id")
    if case_id is not None and not isinstance(case_id, str | int):
        raise ConfigurationError(f'{where}: "id" must be a string, got {case_id!r}')
    try:
        return Case(
            row["input"],
            row.get("expected"),
            row.get("metadata"),
            None if case_id is None else str(case_id),
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _case_from_row(row: dict[str, str], path: Path, lineno: int) -> tuple[Case, str]:
    where = f"{path}, line {lineno}"
    meta: dict[str, Any] = {}
    raw_meta = row.get("metadata", "").strip()
    if raw_meta:
        try:
            meta = json.loads(raw_meta)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{where}: the metadata cell is not JSON ({exc.msg}); write a "
                "JSON object or leave it empty"
            ) from None
        if not isinstance(meta, dict):
            raise ConfigurationError(f"{where}: metadata must be a JSON object")
    rest = {k: v for k, v in row.items() if k not in CASE_KEYS}
    value: Any
    if "input" in row:
        value = _cell(row["input"], where)
        meta = {**rest, **meta}
    else:
        if not rest:
            raise ConfigurationError(f"{path}: the CSV header has no input column")
        value = rest
    expected = row.get("expected")
    case_id = (row.get("id") or "").strip() or None
    return Case(value, expected if expected not in (None, "") else None, meta, case_id), where


def _cell(text: str, where: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{where}: the input cell looks like a JSON object but is not "
                f"valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
    return text


__all__ = ["Case", "Dataset", "canonical", "short_hash"]

"""Read the corpus labels (``# expect: TH101 TH304`` on the faulty line) and score a scan."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tether.audit import CodeAudit

CORPUS = Path(__file__).parent / "corpus"
_EXPECT = re.compile(r"#\s*expect:\s*((?:TH\d{3}\s*)+)")

Label = tuple[str, int, str]  # (path relative to the corpus, line, rule)


def labels(root: Path = CORPUS) -> set[Label]:
    found: set[Label] = set()
    for file in sorted(root.rglob("*.py")):
        rel = file.relative_to(root).as_posix()
        for number, line in enumerate(file.read_text().splitlines(), 1):
            match = _EXPECT.search(line)
            if match:
                found.update((rel, number, rule) for rule in match.group(1).split())
    return found


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int
    false_positives: tuple[Label, ...]
    false_negatives: tuple[Label, ...]

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def line(self, name: str) -> str:
        return (
            f"{name}: precision {self.precision:.3f} ({self.tp}/{self.tp + self.fp}), "
            f"recall {self.recall:.3f} ({self.tp}/{self.tp + self.fn})"
        )


def measure(audit: CodeAudit, expected: set[Label], prefix: str = "") -> Score:
    got = {(f.path, f.line, f.rule) for f in audit.findings if f.path.startswith(prefix)}
    want = {label for label in expected if label[0].startswith(prefix)}
    return Score(
        tp=len(got & want),
        fp=len(got - want),
        fn=len(want - got),
        false_positives=tuple(sorted(got - want)),
        false_negatives=tuple(sorted(want - got)),
    )

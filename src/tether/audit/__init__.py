"""The reliability audit: ``tether.audit.code(path)`` scans a code base for the four areas
(orchestration, context, retry, observability); ``tether.audit.runs(th)`` reports from the
recorded runs: success, failures, retries absorbed, the reliability tax by cause, LLM
providers, cost and latency."""

from tether.audit.model import CodeAudit, Finding, Skipped
from tether.audit.rules import AREAS, RULES, Rule
from tether.audit.runs_audit import RunAudit, runs
from tether.audit.scan import code

__all__ = ["AREAS", "RULES", "CodeAudit", "Finding", "Rule", "RunAudit", "Skipped", "code", "runs"]

"""The reliability audit: ``tether.audit.code(path)`` scans a code base for the four areas
(orchestration, context, retry, observability); ``tether.audit.runs(th)`` (coming) reports
from recorded runs."""

from tether.audit.model import CodeAudit, Finding, Skipped
from tether.audit.rules import AREAS, RULES, Rule
from tether.audit.scan import code

__all__ = ["AREAS", "RULES", "CodeAudit", "Finding", "Rule", "Skipped", "code"]

"""The run audit on the dashboard: ``/audit`` (the report's charts and tables) and
``GET /api/audit?since=7d&function=F`` (its JSON, as ``tether audit runs --json``).

Both handlers are plain ``def``: starlette runs them in its threadpool, so the store's
reads never run on the server's event loop. Error messages pass the dashboard's redactor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tether.audit import runs as audit_runs
from tether.audit.runs_html import body
from tether.errors import ConfigurationError
from tether.observe.redact import Redactor

if TYPE_CHECKING:
    from tether.harness import Harness

Page = Callable[..., HTMLResponse]


def redacted(doc: dict[str, Any], r: Redactor) -> dict[str, Any]:
    """The report with every error message and advice text through the redactor."""

    def failures(items: list[dict[str, Any]]) -> None:
        for item in items:
            item["message"] = r.text(item["message"])

    failures(doc["failures"])
    for fig in doc["functions"].values():
        failures(fig["failures"])
        for step in fig["steps"].values():
            failures(step["failures"])
    for item in doc["advice"]:
        item["text"] = r.text(item["text"])
        item["where"] = r.text(item["where"])
    return doc


def routes(harness: Harness, page: Page, r: Redactor) -> list[Route]:
    def report(request: Request) -> dict[str, Any]:
        since = request.query_params.get("since") or None
        function = request.query_params.get("function") or None
        return redacted(audit_runs(harness, since=since, function=function).to_dict(), r)

    def api_audit(request: Request) -> Response:
        try:
            return JSONResponse(report(request))
        except ConfigurationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    def audit_page(request: Request) -> Response:
        fns = sorted(f["id"] for f in harness.store.registered_functions())
        try:
            doc = report(request)
        except ConfigurationError as exc:
            response = page("audit.html", request, report="", error=str(exc), functions=fns)
            response.status_code = 400
            return response
        return page("audit.html", request, report=body(doc, r.text), error=None, functions=fns)

    return [Route("/audit", audit_page), Route("/api/audit", api_audit)]

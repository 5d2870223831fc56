"""Context windows on the dashboard: ``/windows`` (the most recently updated windows),
``/windows/{key}`` (a window's items, pins, summaries and artifacts), and their JSON at
``GET /api/windows`` and ``GET /api/windows/{key}``. A run's page shows each
``ctx.step.llm(context=...)`` call's context report (``window_reports``).

Handlers are plain ``def`` (starlette's threadpool: no store read on the event loop); item
texts pass the dashboard's redactor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tether.observe.redact import Redactor

if TYPE_CHECKING:
    from tether.harness import Harness

Page = Callable[..., HTMLResponse]


def window_view(doc: dict[str, Any], r: Redactor) -> dict[str, Any]:
    """An exported window (``export_window``) split for the page: items with their texts
    redacted, the current pins, the summaries (the one in force marked) and the artifacts."""
    items = []
    pins: dict[str, dict[str, Any]] = {}
    for raw in doc["items"]:
        message = raw.get("message") or {}
        text = message.get("content") if message else raw.get("text")
        item = {
            "seq": raw["seq"],
            "kind": raw["kind"],
            "role": message.get("role") if message else None,
            "name": raw.get("name"),
            "text": r.text(text or ""),
            "tool_calls": [c.get("name") for c in message.get("tool_calls") or []],
            "tool_call_id": message.get("tool_call_id") if message else None,
            "handle": raw.get("handle"),
            "from_seq": raw.get("from_seq"),
            "through_seq": raw.get("through_seq"),
            "created_at": raw.get("created_at"),
            "report": (raw.get("meta") or {}).get("report"),
        }
        items.append(item)
        if raw["kind"] == "pin" and raw.get("name"):
            if raw.get("text") is None:
                pins.pop(raw["name"], None)
            else:
                pins[raw["name"]] = item
    summaries = [i for i in items if i["kind"] == "summary"]
    for s in summaries:
        s["in_force"] = s["seq"] == doc.get("summary_seq")
    return {
        "key": doc["key"],
        "subject": doc.get("subject"),
        "model": doc.get("model"),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
        "items": items,
        "pins": list(pins.values()),
        "summaries": summaries,
        "artifacts": [i for i in items if i["kind"] == "artifact"],
    }


def routes(harness: Harness, page: Page, r: Redactor) -> list[Route]:
    store = harness.store

    def listing() -> list[dict[str, Any]]:
        lister = getattr(store, "list_windows", None)
        return [] if lister is None else list(lister(200))

    def detail(key: str) -> dict[str, Any] | None:
        doc = store.export_window(key) if hasattr(store, "export_window") else {}
        return window_view(doc, r) if doc else None

    def api_windows(request: Request) -> Response:
        return JSONResponse({"windows": listing()})

    def api_window(request: Request) -> Response:
        key = request.path_params["key"]
        view = detail(key)
        if view is None:
            return JSONResponse({"error": f"no context window {key!r}"}, status_code=404)
        return JSONResponse(view)

    def windows_page(request: Request) -> Response:
        return page("windows.html", request, windows=listing())

    def window_page(request: Request) -> Response:
        key = request.path_params["key"]
        view = detail(key)
        if view is None:
            response = page("windows.html", request, windows=listing(), missing=key)
            response.status_code = 404
            return response
        return page("window.html", request, w=view)

    return [
        Route("/windows", windows_page),
        Route("/windows/{key:path}", window_page),
        Route("/api/windows", api_windows),
        Route("/api/windows/{key:path}", api_window),
    ]

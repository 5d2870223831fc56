"""Routes of the dashboard: HTML pages, the JSON API, server-sent events, token auth.

No store call runs on the server's event loop (a PostgreSQL round trip, an fsync or a
busy timeout on a locked SQLite file can wait without bound): handlers that touch the store
are plain ``def`` (starlette runs them in its threadpool); the few that must read the body
first hand the store work to a thread, and the live stream reads in a thread too.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tether.dashboard.audit import routes as audit_routes
from tether.dashboard.guard import (
    COOKIE,
    MAX_BODY_BYTES,
    BadRequest,
    BodyTooLarge,
    guard,
    is_loopback,
    json_body,
    read_body,
    session,
)
from tether.dashboard.openapi import OPENAPI
from tether.dashboard.subjects import routes as subject_routes
from tether.dashboard.views import function_stats, run_detail, run_summary
from tether.dashboard.windows import routes as window_routes
from tether.errors import EncryptionError, StoreError, TetherError
from tether.observe import TRACE_KV_PREFIX as KV_PREFIX
from tether.observe.redact import Redactor, default_redactor
from tether.records import TERMINAL_STATUSES, Run, RunStatus
from tether.store.queries import RunQuery

if TYPE_CHECKING:
    from tether.harness import Harness

STATUSES = [s.value for s in RunStatus]
STATS_WINDOW = 7 * 86400.0
STATS_LIMIT = 10_000
RETRY_AFTER_S = 5  # what a 503 (the store locked, full or unreachable) asks clients to wait
log = logging.getLogger("tether.dashboard")

__all__ = ["create_app", "is_loopback"]

LOGIN_FORM = (
    "<!doctype html><title>tether: sign in</title><form method='post' action='/login'>"
    "<label>Dashboard token (TETHER_DASHBOARD_TOKEN) <input name='token' type='password' "
    "autofocus></label> <button>Sign in</button></form>"
)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw).timestamp()
        except ValueError:
            raise BadRequest(f"{name} must be epoch seconds or ISO 8601, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRequest(f"{name} must be a finite number")
    return value


def run_query(request: Request) -> RunQuery:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {STATUSES}, got {status!r}")
    since = _float(request, "since")
    hours = request.query_params.get("hours")
    if since is None and hours:
        try:
            since = time.time() - float(hours) * 3600
        except ValueError:
            raise BadRequest(f"hours must be a number, got {hours!r}") from None
    return RunQuery(
        function_id=request.query_params.get("function_id") or None,
        status=status,
        since=since,
        until=_float(request, "until"),
        text=request.query_params.get("q") or None,
        event_id=request.query_params.get("event_id") or None,
        limit=_int(request, "limit", 50, 1, 500),
        before=request.query_params.get("before") or None,
    )


def create_app(
    harness: Harness,
    *,
    token: str | None = None,
    redactor: Redactor | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The dashboard for ``harness``. With ``token`` (default ``TETHER_DASHBOARD_TOKEN``)
    every page and API call needs it: ``Authorization: Bearer <token>`` or the session
    cookie set by ``/login?token=<token>``; without one it answers loopback only. Cross-site
    state changes and bodies over ``max_body_bytes`` are refused (``guard.py``)."""
    if token is None:
        token = os.environ.get("TETHER_DASHBOARD_TOKEN")
    token = token or None  # "" turns auth off, even with the variable set
    r = redactor or default_redactor()
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
    env.filters["secs"] = _secs
    env.filters["when"] = _when
    env.filters["iso"] = _iso
    store = harness.store

    def page(name: str, request: Request, **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(request=request, statuses=STATUSES, **ctx)
        return HTMLResponse(html)

    def runs_data(q: RunQuery) -> dict[str, Any]:
        runs = store.query_runs(q)
        return {
            "runs": [run_summary(run, r) for run in runs],
            "next": runs[-1].id if len(runs) == q.limit else None,
        }

    def runs_fingerprint() -> str:
        return ",".join(f"{x.id}{x.status.value}" for x in store.query_runs(RunQuery(limit=20)))

    def detail(run_id: str) -> dict[str, Any] | None:
        run = store.get_run(run_id)
        if run is None:
            return None
        return run_detail(run, r, store.kv_get(KV_PREFIX + run_id))

    def functions() -> list[dict[str, Any]]:
        rows, retries = store.run_stats(time.time() - STATS_WINDOW, STATS_LIMIT)
        registered = [f["id"] for f in store.registered_functions()]
        return function_stats(rows, retries, registered)

    def events(limit: int, before: str | None, name: str | None) -> dict[str, Any]:
        found = store.list_events(limit, before, name)
        out = []
        for row, received, decisions in found:
            triggered = store.query_runs(RunQuery(event_id=row.id, limit=20))
            out.append(
                {
                    "id": row.id,
                    "name": row.name,
                    "data": r.value(json.loads(row.data)),
                    "ts": row.ts,
                    "received_at": received,
                    "decisions": r.value(json.loads(decisions)) if decisions else [],
                    "runs": [
                        {
                            "id": t.id,
                            "function_id": t.function_id,
                            "status": t.status.value,
                            "reason": r.value(t.reason),
                        }
                        for t in triggered
                    ],
                }
            )
        return {"events": out, "next": found[-1][0].id if len(found) == limit else None}

    # -- API --------------------------------------------------------------------------------
    def api_runs(request: Request) -> Response:
        return JSONResponse(runs_data(run_query(request)))

    def api_run(request: Request) -> Response:
        data = detail(request.path_params["run_id"])
        if data is None:
            return JSONResponse({"error": "run not found"}, status_code=404)
        return JSONResponse(data)

    def api_functions(request: Request) -> Response:
        return JSONResponse({"functions": functions()})

    def api_events(request: Request) -> Response:
        limit = _int(request, "limit", 50, 1, 500)
        return JSONResponse(
            events(
                limit,
                request.query_params.get("before") or None,
                request.query_params.get("name") or None,
            )
        )

    def cancel(run_id: str) -> Response:
        found = store.run_status(run_id)
        if found is None:
            return JSONResponse({"error": f"run {run_id} not found"}, status_code=404)
        status = found[0]
        if status not in TERMINAL_STATUSES:
            status = harness.cancel(run_id).value
            if status == "cancelled" or status not in TERMINAL_STATUSES:
                return JSONResponse({"status": status})  # a running run stops at a step
        return JSONResponse(
            {"error": f"run {run_id} is already {status}: nothing to cancel", "status": status},
            status_code=409,
        )

    def api_cancel(request: Request) -> Response:
        """404: no such run; 409: it has finished (``status`` says how); 503: the store
        is locked, full or unreachable (retry); 500: anything else (logged)."""
        run_id = request.path_params["run_id"]
        try:
            return cancel(run_id)
        except StoreError:
            raise  # answered 503 by _store_unavailable
        except Exception:
            log.exception("cancelling run %s failed", run_id)
            return JSONResponse(
                {"error": f"cancelling run {run_id} failed; the traceback is in the server log"},
                status_code=500,
            )

    def replay(run_id: str, from_step: str | None) -> Response:
        if store.get_run(run_id) is None:
            return JSONResponse({"error": "run not found"}, status_code=404)
        try:
            handle = harness.replay(run_id, from_step)
        except StoreError:
            raise
        except TetherError as exc:
            raise BadRequest(str(exc)) from None
        return JSONResponse({"run_id": handle.run_id})

    async def api_replay(request: Request) -> Response:
        body = await json_body(request)
        from_step = body.get("from_step")
        if from_step is not None and not isinstance(from_step, str):
            raise BadRequest("from_step must be a step id (a string) or null")
        return await run_in_threadpool(replay, request.path_params["run_id"], from_step)

    def send(event: dict[str, Any]) -> Response:
        try:
            accepted = harness._intake.accept(harness._intake.rows(event))
        except StoreError:
            raise
        except TetherError as exc:
            raise BadRequest(str(exc)) from None
        return JSONResponse(
            {
                "accepted": [
                    {"event_id": a.event_id, "duplicate": a.duplicate, "run_ids": a.run_ids}
                    for a in accepted
                ]
            }
        )

    async def api_send(request: Request) -> Response:
        body = await json_body(request)
        name = body.get("name")
        data = body.get("data", {})
        event_id = body.get("id")
        if not isinstance(name, str) or not name:
            raise BadRequest("name must be a non-empty string")
        if not isinstance(data, dict):
            raise BadRequest("data must be a JSON object")
        if event_id is not None and not isinstance(event_id, str):
            raise BadRequest("id must be a string")
        return await run_in_threadpool(send, {"name": name, "data": data, "id": event_id})

    async def api_openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def api_stream(request: Request) -> Response:
        """Server-sent events: ``change`` whenever the watched run (``?run_id=``) or the
        newest runs change; the pages reload what they show."""
        run_id = request.query_params.get("run_id")

        def fingerprint() -> str:
            if run_id:
                return run_fingerprint(store.get_run(run_id))
            return runs_fingerprint()

        async def stream() -> AsyncIterator[str]:
            # ``seen``: what the page rendered; a change between its render and this
            # connection is sent at once.
            last = request.query_params.get("seen")
            yield "event: hello\ndata: {}\n\n"
            for i in range(3600):  # half an hour at most; the browser reconnects
                if i:
                    await asyncio.sleep(0.5)
                    if await request.is_disconnected():
                        return
                now = await asyncio.to_thread(fingerprint)
                if last is not None and now != last:
                    yield f"event: change\ndata: {json.dumps(now)}\n\n"
                elif i:
                    yield ": keep-alive\n\n"
                last = now

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    # -- pages --------------------------------------------------------------------------------
    def runs_page(request: Request) -> Response:
        q = run_query(request)
        fns = sorted(f["id"] for f in store.registered_functions())
        return page(
            "runs.html",
            request,
            data=runs_data(q),
            q=q,
            functions=fns,
            seen=runs_fingerprint(),
            searchable=store.codec.searchable,
        )

    def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = store.get_run(run_id)
        if run is None:
            missing = page("missing.html", request, run_id=run_id)
            missing.status_code = 404
            return missing
        data = run_detail(run, r, store.kv_get(KV_PREFIX + run_id))
        reports = store.window_reports(run_id) if hasattr(store, "window_reports") else {}
        return page(
            "run.html", request, run=data, seen=run_fingerprint(run), context_reports=reports
        )

    def functions_page(request: Request) -> Response:
        return page("functions.html", request, functions=functions())

    def events_page(request: Request) -> Response:
        limit = _int(request, "limit", 50, 1, 500)
        fns = sorted(f["id"] for f in store.registered_functions())
        return page(
            "events.html",
            request,
            data=events(
                limit,
                request.query_params.get("before") or None,
                request.query_params.get("name") or None,
            ),
            functions=fns,
        )

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def login(request: Request) -> Response:
        """``POST /login`` with the form's ``token`` (kept out of URLs and access logs);
        ``GET /login`` shows the form (``GET /login?token=`` works too, for scripts)."""
        if token is None:
            return RedirectResponse("/runs", status_code=303)
        if request.method == "POST":
            given = parse_qs((await read_body(request)).decode("utf-8", "replace"))
            attempt = (given.get("token") or [""])[0]
        elif "token" in request.query_params:
            attempt = request.query_params["token"]
        else:
            return HTMLResponse(LOGIN_FORM)
        if not hmac.compare_digest(attempt.encode(), token.encode()):
            return HTMLResponse("<h1>401</h1><p>Wrong or missing token.</p>", status_code=401)
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(COOKIE, session(token), httponly=True, samesite="strict")
        return response

    routes = [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/runs", runs_page),
        Route("/runs/{run_id:path}", run_page),
        Route("/functions", functions_page),
        Route("/events", events_page),
        Route("/api/openapi.json", api_openapi),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id:path}/cancel", api_cancel, methods=["POST"]),
        Route("/api/runs/{run_id:path}/replay", api_replay, methods=["POST"]),
        Route("/api/runs/{run_id:path}", api_run),
        Route("/api/functions", api_functions),
        Route("/api/events", api_events),
        Route("/api/events", api_send, methods=["POST"]),
        Route("/api/stream", api_stream),
        *audit_routes(harness, page, r),
        *window_routes(harness, page, r),
        *subject_routes(harness, page, r, json_body),
    ]
    middleware = [Middleware(BaseHTTPMiddleware, dispatch=guard(token, max_body_bytes))]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            BadRequest: _bad_request,
            BodyTooLarge: _too_large,
            StoreError: _store_unavailable,
            EncryptionError: _unreadable,
        },
    )


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _too_large(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=413)


async def _unreadable(request: Request, exc: Exception) -> Response:
    """A payload that cannot be decrypted (a wrong key, a forgotten subject): the message
    names the key by id and the fix, never a key."""
    log.warning("a stored payload cannot be read: %s", exc)
    return JSONResponse({"error": str(exc)}, status_code=500)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """A store that is locked, full or unreachable: 503 with the store's message (it names
    the store and the fix) and a Retry-After."""
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if request.url.path.startswith("/api"):
        return JSONResponse({"error": str(exc)}, status_code=503, headers=headers)
    body = f"<h1>503: the store is unavailable</h1><p>{html.escape(str(exc))}</p>"
    return HTMLResponse(body, status_code=503, headers=headers)


def run_fingerprint(run: Run | None) -> str:
    """What the run page shows, in brief: it reloads when this changes."""
    if run is None:
        return "missing"
    return f"{run.status.value}:{len(run.steps)}:" + ",".join(
        f"{s.status}{len(s.attempts)}" for s in run.steps
    )


def _when(epoch: float | None) -> str:
    """Epoch seconds as the runs page shows times: ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return "" if epoch is None else _iso(epoch)[:19].replace("T", " ")


def _iso(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def _secs(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"

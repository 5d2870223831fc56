"""What every dashboard request passes before a route sees it.

- **Auth.** With a token (``create_app(token=)`` or ``TETHER_DASHBOARD_TOKEN``) every page
  and API call needs it: ``Authorization: Bearer <token>`` or the session cookie that
  signing in at ``/login`` sets (a form that POSTs the token, so it stays out of URLs and
  access logs; an HMAC of the token, never the token; HttpOnly, SameSite=Strict).
  Without a token the dashboard answers loopback only: a request that came over the
  network from another address is refused (403), and so is one whose ``Host`` is not a
  loopback name, which is what a DNS-rebinding page would send (``tether dev`` also
  refuses to bind beyond loopback without a token).
- **Cross-site requests.** A state-changing request (POST, PUT, PATCH, DELETE) sent by a
  browser from another site is refused (403): its ``Sec-Fetch-Site`` says ``cross-site``
  or ``same-site``, or its ``Origin`` is not the dashboard's own. The pages' actions are
  same-origin ``fetch`` calls; scripts and the CLI send neither header.
- **Body size.** A request body over ``max_body_bytes`` (default 1 MiB) is refused with 413
  before it is read (``Content-Length``), or as soon as the read passes the limit.
- **Headers.** Every response says ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY`` (no clickjacking of the cancel buttons) and
  ``Referrer-Policy: no-referrer`` (a ``/login?token=`` URL never leaks in a Referer).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

COOKIE = "tether_session"
MAX_BODY_BYTES = 1 << 20
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

Dispatch = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]


class BadRequest(Exception):
    """Answered 400 with the message."""


class BodyTooLarge(Exception):
    """Answered 413 with the message."""


def session(token: str) -> str:
    """The session cookie's value for ``token``: an HMAC of it, never the token."""
    return hmac.new(token.encode(), b"tether-dashboard-session", "sha256").hexdigest()


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _host_name(host_header: str) -> str:
    return urlsplit(f"//{host_header}").hostname or ""


def _refuse(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api"):
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(f"<h1>{status}</h1><p>{message}</p>", status_code=status)


def _authorised(request: Request, token: str) -> bool:
    bearer = request.headers.get("authorization", "")
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(bearer.encode(), f"Bearer {token}".encode()) or (
        bool(cookie) and hmac.compare_digest(cookie.encode(), session(token).encode())
    )


def _cross_site(request: Request) -> str | None:
    """Why this state-changing request looks sent by another site's page, or None."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {fetch_site}"
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != request.headers.get("host", "").lower():
            return "its Origin is not this dashboard"
    return None


def guard(token: str | None, max_body_bytes: int = MAX_BODY_BYTES) -> Dispatch:
    """The middleware's dispatch (see the module docstring)."""

    async def dispatch(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await _check(request, call_next)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _check(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if token is None:
            client = request.client.host if request.client else ""
            # Test transports name no address; a real connection always has one.
            if _is_ip(client) and not is_loopback(client):
                return _refuse(
                    request,
                    403,
                    "this dashboard has no token, so it answers loopback only: set "
                    "TETHER_DASHBOARD_TOKEN to serve it beyond loopback",
                )
            host = _host_name(request.headers.get("host", ""))
            if _is_ip(client) and host and not is_loopback(host):
                return _refuse(
                    request,
                    403,
                    f"this dashboard has no token and answers to loopback names only, not "
                    f"{host!r}: open it as http://127.0.0.1:PORT, or set TETHER_DASHBOARD_TOKEN",
                )
        elif request.url.path != "/login" and not _authorised(request, token):
            if request.url.path.startswith("/api"):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            return HTMLResponse(
                "<h1>401</h1><p><a href='/login'>Sign in</a> with the dashboard token "
                "(TETHER_DASHBOARD_TOKEN).</p>",
                status_code=401,
            )
        if request.method in UNSAFE:
            why = _cross_site(request)
            if why is not None:
                return _refuse(request, 403, f"cross-site request refused ({why})")
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_body_bytes:
                return _refuse(request, 413, _too_large(max_body_bytes))
        request.state.max_body_bytes = max_body_bytes
        return await call_next(request)

    return dispatch


def _too_large(limit: int) -> str:
    return f"the request body is larger than the dashboard takes ({limit} bytes)"


async def read_body(request: Request) -> bytes:
    """The request's body, read up to the body limit (``BodyTooLarge`` past it)."""
    limit = getattr(request.state, "max_body_bytes", MAX_BODY_BYTES)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BodyTooLarge(_too_large(limit))
    return bytes(raw)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty), read up to the body limit."""
    raw = await read_body(request)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body

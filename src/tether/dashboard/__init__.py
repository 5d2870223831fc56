"""The local dashboard: a small server-rendered ASGI app (starlette) over the store, with a
JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``). Served by ``tether dev``.

    from tether.dashboard import create_app
    app = create_app(harness, token=None)   # any ASGI server
"""

from __future__ import annotations

from tether.dashboard.app import create_app, is_loopback

__all__ = ["create_app", "is_loopback"]

"""The local dashboard: a small server-rendered ASGI app (starlette) over the store, with a
JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``). Served by ``tether dev``.

    from tether.dashboard import create_app
    app = create_app(harness, token=None)   # any ASGI server

The app (and starlette) load on first use of ``create_app``: ``tether.dashboard.views``,
the plain data the pages show, is shared with the CLI, which runs without the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.dashboard.app import create_app, is_loopback

__all__ = ["create_app", "is_loopback"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tether.dashboard import app

        return getattr(app, name)
    raise AttributeError(f"module 'tether.dashboard' has no attribute {name!r}")

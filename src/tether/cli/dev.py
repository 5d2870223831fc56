"""``tether dev``: a worker for the app and the dashboard in one process."""

from __future__ import annotations

import os

import typer

from tether.cli.loader import load_app
from tether.cli.output import console, fail, plain


def serve(app_ref: str, store: str | None, host: str, port: int, concurrency: int) -> None:
    from tether.dashboard.app import is_loopback

    token = os.environ.get("TETHER_DASHBOARD_TOKEN") or None
    if not is_loopback(host) and token is None:
        fail(
            f"refusing to serve the dashboard on {host}: it shows run inputs and can cancel "
            "and replay runs. Set TETHER_DASHBOARD_TOKEN to a secret to bind beyond "
            "loopback, or use --host 127.0.0.1."
        )
        raise typer.Exit(2)
    try:
        import uvicorn

        from tether.dashboard import create_app
    except ImportError as exc:
        fail(f'the dashboard needs {exc.name}: pip install "tether[dashboard]"')
        raise typer.Exit(2) from None
    th = load_app(app_ref, store)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"[bold]tether dev[/] {plain(app_ref)}: functions {plain(sorted(th.functions))} on "
        f"{plain(th.store_url)}\ndashboard: {plain(f'http://{shown}:{port}/runs')}"
        + (" (token required: sign in at /login)" if token else "")
    )
    with th.worker(concurrency=concurrency):
        uvicorn.run(create_app(th, token=token), host=host, port=port, log_level="warning")
    th.close()

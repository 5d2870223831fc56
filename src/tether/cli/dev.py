"""``tether dev``: a worker for the app and the dashboard in one process."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from tether.cli.loader import load_app

console = Console()
err = Console(stderr=True)


def serve(app_ref: str, store: str | None, host: str, port: int, concurrency: int) -> None:
    from tether.dashboard.app import is_loopback

    token = os.environ.get("TETHER_DASHBOARD_TOKEN") or None
    if not is_loopback(host) and token is None:
        err.print(
            f"[bold red]error:[/] refusing to serve the dashboard on {host}: it shows run "
            "inputs and can cancel and replay runs. Set TETHER_DASHBOARD_TOKEN to a secret "
            "to bind beyond loopback, or use --host 127.0.0.1."
        )
        raise typer.Exit(2)
    try:
        import uvicorn

        from tether.dashboard import create_app
    except ImportError as exc:
        err.print(
            f'[bold red]error:[/] the dashboard needs {exc.name}: pip install "tether[dashboard]"'
        )
        raise typer.Exit(2) from None
    th = load_app(app_ref, store)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"[bold]tether dev[/] {app_ref}: functions {sorted(th.functions)} on {th.store_url}\n"
        f"dashboard: http://{shown}:{port}/runs"
        + (" (token required: open /login?token=...)" if token else "")
    )
    with th.worker(concurrency=concurrency):
        uvicorn.run(create_app(th, token=token), host=host, port=port, log_level="warning")
    th.close()

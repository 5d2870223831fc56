"""The ``tether`` command line (typer + rich)."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tether.cli.eval import command as eval_command
from tether.cli.loader import load_app
from tether.errors import TetherError
from tether.harness import Harness
from tether.records import Run, RunStatus

app = typer.Typer(
    name="tether",
    help="A durable harness for AI applications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)
app.command("eval")(eval_command)

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", "-s", help="Store URL (default: TETHER_STORE or .tether/tether.db)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def main() -> None:
    try:
        app()
    except TetherError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


def _harness(store: str | None) -> Harness:
    return Harness(store)


def _since(run: Run) -> str:
    if run.started_at is None or run.ended_at is None:
        return ""
    return f"{(run.ended_at - run.started_at).total_seconds():.3f}s"


def _run_json(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json")


@app.command()
def worker(
    app_ref: Annotated[str, typer.Argument(metavar="APP", help="module:harness or file.py")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-c")] = 10,
    store: StoreOpt = None,
) -> None:
    """Execute runs of APP's functions until SIGINT/SIGTERM."""
    th = load_app(app_ref, store)
    console.print(
        f"[bold]tether worker[/] {app_ref}: functions {sorted(th.functions)} on {th.store_url} "
        f"(concurrency {concurrency})"
    )
    th.worker(concurrency=concurrency).run()
    th.close()


@app.command()
def dev(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-c")] = 10,
    host: Annotated[str, typer.Option(help="Dashboard host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Dashboard port")] = 8288,
    store: StoreOpt = None,
) -> None:
    """Development mode: a worker for APP and the dashboard (http://127.0.0.1:8288)."""
    from tether.cli.dev import serve

    serve(app_ref, store, host, port, concurrency)


@app.command()
def send(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    name: Annotated[str, typer.Argument(help="Event name")],
    data: Annotated[str, typer.Option("--data", "-d", help="Event data as a JSON object")] = "{}",
    event_id: Annotated[str | None, typer.Option("--id", help="Event id (deduplication)")] = None,
    store: StoreOpt = None,
) -> None:
    """Send an event; print its id and the runs it started."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        err.print(f"[bold red]error:[/] --data is not JSON: {exc.msg} at column {exc.colno}")
        raise typer.Exit(2) from None
    th = load_app(app_ref, store)
    rows = th.event_rows({"name": name, "data": payload, "id": event_id})
    accepted = th.accept_rows(rows)
    for row in accepted:
        if row.duplicate:
            console.print(f"event {row.event_id}: duplicate id, nothing done")
        else:
            console.print(f"event {row.event_id}: started runs {row.run_ids or 'none'}")
    th.close()


@app.command()
def runs(
    status: Annotated[str | None, typer.Option("--status", help="Filter by status")] = None,
    function: Annotated[str | None, typer.Option("--function", "-f")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    before: Annotated[str | None, typer.Option(help="Page: runs older than this run id")] = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """List runs, newest first."""
    th = _harness(store)
    items = th.list_runs(function_id=function, status=status, limit=limit, before=before)
    if as_json:
        print(json.dumps([_run_json(r) for r in items], indent=2))
        return
    table = Table("run", "function", "status", "created", "duration")
    for run in items:
        table.add_row(
            run.id,
            run.function_id,
            _styled(run.status),
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _since(run),
        )
    console.print(table)


def _styled(status: RunStatus) -> str:
    colour = {
        "completed": "green",
        "failed": "red",
        "cancelled": "yellow",
        "running": "cyan",
    }.get(status.value, "white")
    return f"[{colour}]{status.value}[/]"


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Show a run: status, input, output, error and its timeline of steps and attempts."""
    th = _harness(store)
    run = th.get_run(run_id)
    if as_json:
        print(json.dumps(_run_json(run), indent=2))
        return
    console.print(f"[bold]{run.id}[/] {run.function_id} {_styled(run.status)} {_since(run)}")
    console.print(f"input:  {json.dumps(run.input)}")
    if run.output is not None:
        console.print(f"output: {json.dumps(run.output)}")
    if run.error:
        console.print(f"[red]error:  {run.error.get('type')}: {run.error.get('message')}[/]")
    if run.replay_of:
        console.print(f"replay of {run.replay_of}")
    table = Table("step", "kind", "status", "attempts", "duration", "output / error")
    for step in run.steps:
        duration = ""
        if step.started_at and step.ended_at:
            duration = f"{(step.ended_at - step.started_at).total_seconds() * 1000:.1f}ms"
        failures = [a for a in step.attempts if a.error_type]
        detail = json.dumps(step.output)[:60] if step.error is None else str(step.error)[:60]
        if failures:
            detail += f"  ({len(failures)} failed: {failures[-1].error_type})"
        table.add_row(step.id, step.kind, step.status, str(len(step.attempts)), duration, detail)
    console.print(table)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    store: StoreOpt = None,
) -> None:
    """Cancel a run (a running one stops at its next step boundary)."""
    status = _harness(store).cancel(run_id)
    console.print(
        f"run {run_id}: {status.value}" + (" (cancel requested)" if status == "running" else "")
    )


@app.command()
def replay(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    from_step: Annotated[
        str | None, typer.Option("--from-step", help="Re-execute from here")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Fork a run: reuse results before --from-step and execute the rest (by a worker)."""
    handle = _harness(store).replay(run_id, from_step=from_step)
    console.print(f"replay of {run_id} queued as run {handle.run_id}")


@app.command("check-replay")
def check_replay(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    limit: Annotated[int, typer.Option("--limit", "-n", help="Recent runs to check")] = 200,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Replay recorded runs against the current code; exit 1 on any divergence."""
    th = load_app(app_ref, store)
    results = th.check_replay(limit=limit)
    bad = [r for r in results if not r["ok"]]
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        console.print(f"checked {len(results)} runs against code version {th.version}")
        for r in bad:
            console.print(f"[red]diverged[/] {r['run_id']} ({r['function_id']}):")
            for row in r["diff"] or []:
                console.print(
                    f"  step #{row['position']}: expected {row['expected']}, got {row['actual']}"
                )
            if not r["diff"]:
                console.print(f"  {r['error']}")
        if not bad:
            console.print("[green]all recorded runs replay on the current code[/]")
    th.close()
    if bad:
        raise typer.Exit(1)


@app.command()
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="e.g. 30d, 12h")] = "30d",
    store: StoreOpt = None,
) -> None:
    """Delete finished runs older than --older-than."""
    counts = _harness(store).prune(older_than)
    console.print(
        f"pruned {counts['runs']} runs, {counts['steps']} steps, {counts['events']} events"
    )


@app.command()
def migrate(store: StoreOpt = None) -> None:
    """Create or upgrade the store's schema."""
    th = _harness(store)
    version = th.store.migrate()
    console.print(f"{th.store_url}: schema version {version}")


@app.command()
def doctor(store: StoreOpt = None) -> None:
    """Check the environment: Python, the store, optional extras."""
    import importlib.util
    import platform

    ok = True
    console.print(f"python {platform.python_version()} on {platform.platform()}")
    th = _harness(store)
    try:
        started = time.perf_counter()
        version = th.store.migrate()
        console.print(
            f"[green]ok[/] store {th.store_url} (schema v{version}, "
            f"{(time.perf_counter() - started) * 1000:.1f} ms to open)"
        )
        stuck = th.list_runs(status="running", limit=1000)
        console.print(f"   runs executing or awaiting takeover: {len(stuck)}")
    except TetherError as exc:
        ok = False
        console.print(f"[red]fail[/] store: {exc}")
    for extra, module in [
        ("postgres", "psycopg"),
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("google", "google.genai"),
        ("local", "llama_cpp"),
        ("otel", "opentelemetry"),
        ("dashboard", "starlette"),
    ]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        state = "[green]installed[/]" if found else f'absent (pip install "tether[{extra}]")'
        console.print(f"   extra {extra}: {state}")
    th.close()
    if not ok:
        raise typer.Exit(1)


@app.command()
def demo(
    tickets: Annotated[int, typer.Option(help="Tickets to triage")] = 20,
    store: Annotated[str | None, typer.Option("--store", help="Store URL")] = None,
) -> None:
    """Run the bundled ticket-triage app end to end on the embedded store."""
    from tether.demo.run import run_demo

    raise typer.Exit(run_demo(tickets=tickets, store=store, console=console))

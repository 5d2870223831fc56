"""The ``tether`` command line (typer + rich).

Commands that read or change stored runs open the store with ``open_existing`` (a missing
store is an error, never created); ``worker``, ``dev``, ``send`` and ``migrate`` create it.
Stored text is printed as plain text (see ``tether.cli.output``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from tether.cli.loader import load_app, raw_store_url
from tether.cli.output import cells, console, err, fail, id_table, plain, short, status_text
from tether.cli.prune import prune_command
from tether.cli.stores import JsonOpt, StoreOpt, open_existing, require_store, store_url
from tether.dashboard.views import step_kind
from tether.errors import TetherError
from tether.harness import Harness
from tether.records import TERMINAL_STATUSES, Run, RunStatus
from tether.store import redact_url

app = typer.Typer(
    name="tether",
    help="A durable harness for AI applications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


__all__ = ["app", "console", "err", "main"]


def main() -> None:
    try:
        app()
    except TetherError as exc:
        fail(str(exc))
        sys.exit(1)


def _duration(run: Run) -> str:
    if run.started_at is None or run.ended_at is None:
        return ""
    return f"{(run.ended_at - run.started_at).total_seconds():.3f}s"


def _run_json(run: Run) -> dict[str, Any]:
    out = run.model_dump(mode="json")
    for step, shown in zip(run.steps, out["steps"], strict=True):
        shown["kind"] = step_kind(step.kind, step.output)
    return out


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


@app.command()
def worker(
    app_ref: Annotated[str, typer.Argument(metavar="APP", help="module:harness or file.py")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-c")] = 10,
    store: StoreOpt = None,
) -> None:
    """Execute runs of APP's functions until SIGINT/SIGTERM."""
    th = load_app(app_ref, store)
    console.print(
        f"[bold]tether worker[/] {plain(app_ref)}: functions {plain(sorted(th.functions))} "
        f"on {plain(th.store_url)} (concurrency {concurrency})"
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
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Send an event; print its id and the runs it started."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        fail(f"--data is not JSON: {exc.msg} at column {exc.colno}")
        raise typer.Exit(2) from None
    th = load_app(app_ref, store)
    accepted = th._intake.accept(th._intake.rows({"name": name, "data": payload, "id": event_id}))
    th.close()
    if as_json:
        _print_json(
            [
                {"event_id": a.event_id, "duplicate": a.duplicate, "run_ids": a.run_ids}
                for a in accepted
            ]
        )
        return
    for row in accepted:
        if row.duplicate:
            console.print(f"event {plain(row.event_id)}: duplicate id, nothing done")
        else:
            started = ", ".join(row.run_ids) or "none"
            console.print(f"event {plain(row.event_id)}: started runs {plain(started)}")


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
    th = open_existing(store)
    items = th.list_runs(function_id=function, status=status, limit=limit, before=before)
    th.close()
    if as_json:
        _print_json([_run_json(r) for r in items])
        return
    table = id_table(
        "run",
        "function",
        short("status"),
        "created",
        short("duration"),
        ids=[r.id for r in items],
    )
    for run in items:
        table.add_row(
            *cells(
                run.id,
                run.function_id,
                status_text(run.status),
                run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                _duration(run),
            )
        )
    console.print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Show a run: status, input, output, error and its timeline of steps and attempts."""
    th = open_existing(store)
    run = th.get_run(run_id)
    th.close()
    if as_json:
        _print_json(_run_json(run))
        return
    status = status_text(run.status).markup
    console.print(f"[bold]{plain(run.id)}[/] {plain(run.function_id)} {status} {_duration(run)}")
    if run.event_name:
        console.print(f"event:  {plain(run.event_name)}")
    console.print(f"input:  {plain(json.dumps(run.input))}")
    if run.output is not None:
        console.print(f"output: {plain(json.dumps(run.output))}")
    if run.error:
        error = f"{run.error.get('type')}: {run.error.get('message')}"
        console.print(f"[red]error:  {plain(error)}[/]")
    if run.reason:
        console.print(f"reason: {plain(run.reason)}")
    if run.replay_of:
        console.print(f"replay of {plain(run.replay_of)}")
    table = id_table(
        "step",
        short("kind"),
        short("status"),
        short("attempts"),
        short("duration"),
        "output / error",
        ids=[s.id for s in run.steps],
    )
    for step in run.steps:
        duration = ""
        if step.started_at and step.ended_at:
            duration = f"{(step.ended_at - step.started_at).total_seconds() * 1000:.1f}ms"
        failures = [a for a in step.attempts if a.error_type]
        detail = json.dumps(step.output)[:60] if step.error is None else str(step.error)[:60]
        if failures:
            detail += f"  ({len(failures)} failed: {failures[-1].error_type})"
        kind = step_kind(step.kind, step.output)
        table.add_row(*cells(step.id, kind, step.status, len(step.attempts), duration, detail))
    console.print(table)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    store: StoreOpt = None,
) -> None:
    """Cancel a run (a running one stops at its next step boundary). Exit 1 when the run
    has already finished."""
    th = open_existing(store)
    try:
        found = th.store.run_status(run_id)
        finished = found[0] if found and found[0] in TERMINAL_STATUSES else None
        if finished is None:
            status = th.cancel(run_id)  # raises when the run does not exist
            if status is not RunStatus.CANCELLED and status.value in TERMINAL_STATUSES:
                finished = status.value  # it ended between the check and the cancel
    finally:
        th.close()
    if finished is not None:
        fail(f"run {run_id} is already {finished}: nothing to cancel")
        raise typer.Exit(1)
    if status is RunStatus.RUNNING:
        console.print(
            f"run {plain(run_id)}: running (cancel requested: it stops at its next step boundary)"
        )
    else:
        console.print(f"run {plain(run_id)}: cancelled")


@app.command()
def replay(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    from_step: Annotated[
        str | None, typer.Option("--from-step", help="Re-execute from here")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Fork a run: reuse results before --from-step and execute the rest (by a worker)."""
    th = open_existing(store)
    try:
        handle = th.replay(run_id, from_step=from_step)
    finally:
        th.close()
    console.print(f"replay of {plain(run_id)} queued as run {plain(handle.run_id)}")


@app.command("check-replay")
def check_replay(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    limit: Annotated[int, typer.Option("--limit", "-n", help="Recent runs to check")] = 200,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Replay recorded runs against the current code; exit 1 on any divergence."""
    th = load_app(app_ref, store)
    url = raw_store_url(th)
    if url is not None:
        require_store(url)
    try:
        results = th.check_replay(limit=limit)
    finally:
        th.close()
    bad = [r for r in results if not r["ok"]]
    if as_json:
        _print_json(results)
    else:
        console.print(f"checked {len(results)} runs against code version {plain(th.version)}")
        for r in bad:
            console.print(f"[red]diverged[/] {plain(r['run_id'])} ({plain(r['function_id'])}):")
            for row in r["diff"] or []:
                console.print(
                    f"  step #{row['position']}: expected {plain(row['expected'])}, "
                    f"got {plain(row['actual'])}"
                )
            if not r["diff"]:
                console.print(f"  {plain(r['error'])}")
        if not bad:
            console.print("[green]all recorded runs replay on the current code[/]")
    if bad:
        raise typer.Exit(1)


app.command("prune")(prune_command)


@app.command()
def migrate(store: StoreOpt = None) -> None:
    """Create or upgrade the store's schema."""
    th = Harness(store)
    try:
        version = th.store.migrate()
    finally:
        th.close()
    console.print(f"{plain(th.store_url)}: schema version {version}")


EXTRAS = [
    ("postgres", "psycopg"),
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("google", "google.genai"),
    ("local", "llama_cpp"),
    ("otel", "opentelemetry"),
    ("dashboard", "starlette"),
]


@app.command()
def doctor(as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """Check the environment: Python, the store, optional extras. Exit 1 when the store
    is missing or cannot be opened."""
    import importlib.util
    import platform

    url = store_url(store)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "store": {"url": redact_url(url), "ok": False},
        "extras": {},
    }
    try:
        started = time.perf_counter()
        th = open_existing(url)
        try:
            report["store"]["schema_version"] = th.store.migrate()
            report["store"]["open_ms"] = round((time.perf_counter() - started) * 1000, 1)
            report["store"]["running"] = len(th.list_runs(status="running", limit=1000))
        finally:
            th.close()
        report["store"]["ok"] = True
    except TetherError as exc:
        report["store"]["error"] = str(exc)
    for extra, module in EXTRAS:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        report["extras"][extra] = found
    if as_json:
        _print_json(report)
    else:
        _print_doctor(report)
    if not report["store"]["ok"]:
        raise typer.Exit(1)


def _print_doctor(report: dict[str, Any]) -> None:
    console.print(f"python {report['python']} on {plain(report['platform'])}")
    found = report["store"]
    if found["ok"]:
        console.print(
            f"[green]ok[/] store {plain(found['url'])} (schema v{found['schema_version']}, "
            f"{found['open_ms']:.1f} ms to open)"
        )
        console.print(f"   runs executing or awaiting takeover: {found['running']}")
    else:
        console.print(f"[red]fail[/] store: {plain(found['error'])}")
    for extra, installed in report["extras"].items():
        absent = plain(f'absent (pip install "tether[{extra}]")')
        console.print(f"   extra {extra}: " + ("[green]installed[/]" if installed else absent))


@app.command()
def demo(
    store: Annotated[str | None, typer.Option("--store", help="Store URL")] = None,
) -> None:
    """Run the bundled support agent end to end on the embedded store (with a SIGKILL)."""
    from tether.demo.run import run_demo

    raise typer.Exit(run_demo(store=store, console=console))


from tether.cli.audit import app as audit_app  # noqa: E402
from tether.cli.eval import command as _eval_command  # noqa: E402
from tether.cli.keys import register as _register_keys  # noqa: E402  (tether keygen, rekey)
from tether.cli.llm import register as _register_llm  # noqa: E402  (tether llm, tether fake-llm)
from tether.cli.memory import app as memory_app  # noqa: E402
from tether.cli.subject import app as subject_app  # noqa: E402

app.add_typer(audit_app, name="audit")
app.add_typer(memory_app, name="memory")
app.add_typer(subject_app, name="subject")
app.command("eval")(_eval_command)
_register_llm(app)
_register_keys(app)

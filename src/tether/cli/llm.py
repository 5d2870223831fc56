"""``tether llm holds|clear``: the LLM circuit breakers and rate-limit holds that workers
share through the store; ``tether fake-llm``: FakeLLMServer in the foreground, so that an
app of several processes can be tested against it."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tether.cli.stores import JsonOpt, StoreOpt, open_existing
from tether.errors import ConfigurationError
from tether.harness import Harness
from tether.llm.circuit import CircuitBreaker, CircuitStatus

console = Console()
err = Console(stderr=True)

llm_app = typer.Typer(
    name="llm",
    help="LLM circuit breakers and rate-limit holds shared by every worker on the store.",
    no_args_is_help=True,
)


def _breaker(store: str | None) -> tuple[Harness, CircuitBreaker]:
    th = open_existing(store)  # a mistyped store is an error, never a new empty one
    breaker: CircuitBreaker = th.circuit_breaker
    return th, breaker


def _until(stamp: float | None, now: float) -> str:
    if stamp is None:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))
    return f"{when}Z (in {max(0.0, stamp - now):.0f}s)"


def _reason(status: CircuitStatus) -> str:
    parts = []
    if status.hold_until is not None:
        parts.append(f"a 429 asked for {status.hold_asked or 0:g}s of quiet")
    if status.state == "open":
        parts.append(f"provider failures; open for {status.cooldown:g}s")
    elif status.state == "half_open":
        parts.append("cooldown over: the next call probes it")
    return "; ".join(parts)


@llm_app.command("holds")
def holds(
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list closed circuits with no hold")
    ] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """List rate-limit holds and open circuits (every worker on the store obeys them)."""
    th, breaker = _breaker(store)
    try:
        rows = [s for s in breaker.statuses() if show_all or not s.clear]
        now = breaker.clock()
    finally:
        th.close()
    if as_json:
        print(json.dumps([s.as_json() for s in rows], indent=2))
        return
    if not rows:
        console.print("no rate-limit holds and no open circuits")
        return
    table = Table("model", "state", "held until", "open until", "why")
    for s in rows:
        table.add_row(
            escape(s.model),
            escape(s.state + (" + held" if s.hold_until is not None else "")),
            escape(_until(s.hold_until, now)),
            escape(_until(s.open_until, now)),
            escape(_reason(s)),
        )
    console.print(table)
    console.print("clear one with: tether llm clear MODEL (or --all)")


@llm_app.command("clear")
def clear(
    model: Annotated[
        str | None, typer.Argument(metavar="[MODEL]", help="e.g. openai:gpt-4.1-mini")
    ] = None,
    clear_all: Annotated[
        bool, typer.Option("--all", help="Clear every hold and open circuit")
    ] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Close MODEL's circuit and drop its rate-limit hold (or every one with --all)."""
    if (model is None) == (not clear_all):
        err.print("[bold red]error:[/] name one MODEL, or pass --all (not both)")
        raise typer.Exit(2)
    th, breaker = _breaker(store)
    try:
        targets = [model] if model else [s.model for s in breaker.statuses() if not s.clear]
        before = [breaker.clear(m) for m in targets]
    finally:
        th.close()
    if as_json:
        print(json.dumps([{"cleared": not b.clear, **b.as_json()} for b in before], indent=2))
        return
    if not before:
        console.print("nothing to clear: no rate-limit holds and no open circuits")
    for b in before:
        if b.clear:
            console.print(f"{escape(b.model)}: was neither held nor open; nothing changed")
        else:
            was = b.state + (", held" if b.hold_until is not None else "")
            console.print(f"{escape(b.model)}: cleared (was {escape(was)})")


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _load_script(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the script {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigurationError(f"the script {path} is not JSON: {exc}") from None


def fake_llm(
    port: Annotated[int, typer.Option("--port", "-p", help="Port; 0 picks a free one")] = 8299,
    host: Annotated[str, typer.Option(help="Loopback address to bind")] = "127.0.0.1",
    script: Annotated[
        Path | None,
        typer.Option(
            "--script", help="JSON schedule of replies and faults (as FakeLLMServer.script)"
        ),
    ] = None,
) -> None:
    """Serve FakeLLMServer in the foreground, for testing apps of several processes.

    It speaks the OpenAI, Anthropic and Gemini wire formats on loopback until SIGINT or
    SIGTERM. Script it with --script, or at run time through its admin endpoints:
    POST /_tether/script, POST /_tether/reset, GET /_tether/requests."""
    from tether.testing.fake_server import ADMIN, FakeLLMServer

    if host not in _LOOPBACK:
        err.print(
            f"[bold red]error:[/] FakeLLMServer serves tests on loopback only; {escape(host)} "
            "is not one of " + ", ".join(_LOOPBACK)
        )
        raise typer.Exit(2)
    try:
        schedule = _load_script(script) if script is not None else None
        server = FakeLLMServer(host, port)
    except ConfigurationError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot listen on {escape(host)}:{port}: {exc.strerror}")
        raise typer.Exit(2) from None
    try:
        if schedule is not None:
            server.script(schedule)
    except ConfigurationError as exc:
        server.stop()
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"FakeLLMServer listening on {server.url} ({server.pending()} scripted entries)")
    print(f"admin: POST {server.url}{ADMIN}script | POST {ADMIN}reset | GET {ADMIN}requests")
    for name, value in server.env().items():
        print(f"export {name}={value}")
    print("serving until Ctrl-C / SIGTERM", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print(f"stopped after {server.request_count()} request(s)", flush=True)


def register(app: typer.Typer) -> None:
    """Add ``tether llm ...`` and ``tether fake-llm`` to the main command."""
    app.add_typer(llm_app, name="llm")
    app.command("fake-llm")(fake_llm)

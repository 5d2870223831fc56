"""``tether prune --older-than 30d [--dry-run] [--vacuum]``: retention from the shell.

Counts and bytes per kind; ``--dry-run`` reads only. On a terminal a progress bar follows
each kind (its total from a dry run first). ``--vacuum`` shrinks the store afterwards (see
README, Retention, for what that costs).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tether.cli.output import console, plain
from tether.cli.stores import JsonOpt, StoreOpt, open_existing
from tether.durable.retention import kinds
from tether.errors import ConfigurationError
from tether.store.retention import KEEP_EXPERIMENTS, PruneResult


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


class Bars:
    """A rich progress bar per kind, on stderr, with totals from a dry run."""

    def __init__(self, totals: PruneResult) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.tasks = {  # one bar per kind (not per dependent count such as steps)
            kind: self.progress.add_task(kind, total=max(n, 1))
            for kind, n in totals.items()
            if kind in kinds()
        }

    def __call__(self, kind: str, done: int, size: int) -> None:
        task = self.tasks.get(kind)
        if task is not None:
            self.progress.update(task, completed=done)


def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age past which data goes, e.g. 30d, 12h")
    ] = "30d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go, per kind; change nothing")
    ] = False,
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="Shrink the store file afterwards (see README)")
    ] = False,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Prune only this kind (repeatable)")
    ] = None,
    keep_experiments: Annotated[
        int, typer.Option("--keep-experiments", help="Latest experiments kept per evaluation")
    ] = KEEP_EXPERIMENTS,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Delete what is older than --older-than: finished runs, events no live run came from,
    old experiments (the latest of each evaluation and baselines stay), online scores,
    LangGraph checkpoints, expired breaker records, superseded memory versions and context
    window items (untouched windows; what a window's summary stands for)."""
    ages: Any = older_than
    if kind:
        unknown = [k for k in kind if k not in kinds()]
        if unknown:
            raise ConfigurationError(
                f"--kind {unknown[0]} is not a kind tether prunes: use one of {list(kinds())}"
            )
        ages = dict.fromkeys(kind, older_than)
    th = open_existing(store)
    try:
        bars = None
        if not dry_run and not as_json and console.is_terminal:
            bars = Bars(th.prune(ages, dry_run=True, keep_experiments=keep_experiments))
            bars.progress.start()
        try:
            result = th.prune(
                ages, dry_run=dry_run, keep_experiments=keep_experiments, progress=bars
            )
        finally:
            if bars is not None:
                bars.progress.stop()
        shrunk = th.vacuum() if vacuum and not dry_run else None
    finally:
        th.close()
    if as_json:
        out: dict[str, Any] = dict(result)
        out.update(
            bytes=result.bytes,
            dry_run=result.dry_run,
            batches=result.batches,
            longest_batch_ms=round(result.longest_batch_s * 1000, 3),
        )
        if shrunk is not None:
            out["vacuum"] = shrunk
        console.print_json(data=out)
        return
    verb = "would prune" if dry_run else "pruned"
    console.print(
        f"{verb} {result.get('runs', 0)} runs, {result.get('steps', 0)} steps, "
        f"{result.get('events', 0)} events"
    )
    table = Table("kind", "count", "bytes", box=None)
    for name, n in result.items():
        table.add_row(name, str(n), human(result.bytes[name]) if name in result.bytes else "")
    console.print(table)
    if not dry_run and result.batches:
        console.print(
            f"{result.batches} batches, the longest held the write lock "
            f"{result.longest_batch_s * 1000:.1f} ms"
        )
    if shrunk is not None:
        console.print(
            f"vacuum: {plain(human(shrunk['bytes_before']))} -> "
            f"{plain(human(shrunk['bytes_after']))}"
            + (" (rebuilt once with a full VACUUM)" if shrunk["rebuilt"] else "")
        )

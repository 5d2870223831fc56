"""``tether memory``: search a subject's long-term memory, and reindex after the embedder
changes (``reindex`` embeds every current memory that has no vector of the new model)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from tether.cli.output import cells, console, id_table, short
from tether.cli.stores import StoreOpt, open_existing
from tether.errors import ConfigurationError
from tether.memory import DEFAULT_EMBEDDER, Memory, reindex
from tether.store.sql import SQLStore

app = typer.Typer(
    name="memory",
    help="Long-term memory: search a subject's memories, reindex after an embedder change.",
    no_args_is_help=True,
    add_completion=False,
)


def _sql_store(store: str | None) -> SQLStore:
    th = open_existing(store)
    found = th.store
    if not isinstance(found, SQLStore):
        raise ConfigurationError("tether memory needs a SQL store (SQLite or PostgreSQL)")
    return found


@app.command("search")
def search_command(
    subject: Annotated[str, typer.Argument(help="The subject, e.g. user:42")],
    query: Annotated[str, typer.Argument(help="What to look for")],
    k: Annotated[int, typer.Option("-k", help="How many hits at most")] = 5,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only memories with a tag")] = None,
    embedder: Annotated[
        str | None,
        typer.Option(help="Embedding model (default: the one the store's index records)"),
    ] = None,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False,
) -> None:
    """The subject's memories that best match QUERY (words, meaning and recency fused)."""
    sql = _sql_store(store)
    index = sql.memory_index()
    model = embedder or (index[0] if index is not None else None)
    mem = Memory(sql, subject, embedder=model)
    hits = mem.search(query, k=k, tags=tag)
    if as_json:
        rows = [
            {
                "id": h.id,
                "text": h.text,
                "score": h.score,
                "created_at": h.created_at.isoformat(),
                "source": h.source,
                "tags": list(h.tags),
            }
            for h in hits
        ]
        print(json.dumps(rows, indent=2))
        return
    if not hits:
        console.print(f"no memory of {subject} matches (embedder: {model or 'none, words only'})")
        return
    table = id_table("id", short("score"), "text", "source", ids=[h.id for h in hits])
    for h in hits:
        table.add_row(*cells(h.id, f"{h.score:.3f}", h.text, h.source))
    console.print(table)


@app.command("reindex")
def reindex_command(
    embedder: Annotated[
        str, typer.Option(help="The embedding model to (re)build the index with")
    ] = DEFAULT_EMBEDDER,
    batch: Annotated[int, typer.Option(help="Texts embedded per call")] = 256,
    store: StoreOpt = None,
) -> None:
    """Re-embed every current memory with EMBEDDER (after changing Harness(embedder=))."""
    if batch < 1:
        raise ConfigurationError(f"--batch must be at least 1, not {batch}")
    sql = _sql_store(store)
    before = sql.memory_index()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
        task = bar.add_task(f"embedding with {embedder}", total=None)
        done = reindex(
            sql,
            embedder,
            batch=batch,
            progress=lambda n: bar.update(task, description=f"embedded {n} memories"),
        )
    after = sql.memory_index()
    was = f"{before[0]} ({before[1]} dimensions)" if before else "no index"
    now = f"{after[0]} ({after[1]} dimensions)" if after else "no vectors yet"
    console.print(f"reindexed {done} memories: {was} -> {now}")

"""``tether subject list|show|export|forget``: what is kept about the people an app serves.

Every command opens an existing store (``open_existing``: a mistyped URL creates nothing)
and none of them creates a subject: a subject with nothing kept is an error (exit 1), as
the API's 404. Stored text (ids, memories, preferences) is printed as plain text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tether.cli.output import cells, console, fail, id_table, plain, short, status_text
from tether.cli.stores import JsonOpt, StoreOpt, open_existing
from tether.errors import SubjectNotFound
from tether.harness import Harness
from tether.subjects import Subject, summary

app = typer.Typer(
    name="subject",
    help="What is kept about a subject (an end user, a tenant): list, show, export, forget.",
    no_args_is_help=True,
    add_completion=False,
)

SubjectArg = Annotated[str, typer.Argument(metavar="SUBJECT", help="The subject id, e.g. user:42")]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _kept(th: Harness, subject_id: str) -> Subject:
    """The subject, or ``SubjectNotFound`` when nothing is kept about it (creates nothing)."""
    subject = th._subject(subject_id)
    if not subject.kept():
        raise SubjectNotFound(subject_id)
    return subject


@app.command("list")
def list_command(as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """List the subjects the store keeps something about."""
    th = open_existing(store)
    try:
        ids = th.subjects()
    finally:
        th.close()
    if as_json:
        _print_json(ids)
        return
    table = id_table("subject", ids=ids)
    for subject_id in ids:
        table.add_row(*cells(subject_id))
    console.print(table)
    console.print(f"{len(ids)} subject(s)")


@app.command()
def show(subject_id: SubjectArg, as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """Show what is kept about SUBJECT: preferences, memories, windows, runs."""
    th = open_existing(store)
    try:
        doc = _kept(th, subject_id).export()
    finally:
        th.close()
    shown = summary(doc)
    current = shown["memories"]
    if as_json:
        _print_json(shown)
        return
    console.print(f"[bold]subject {plain(doc['subject'])}[/]")
    console.print(f"preferences: {plain(json.dumps(doc['preferences'], ensure_ascii=False))}")
    memories = id_table("memory", "text", short("created"), ids=[m["id"] for m in current])
    for m in current:
        memories.add_row(*cells(m["id"], m["text"], m.get("created_at")))
    console.print(f"memories: {len(current)} current, {shown['superseded_versions']} superseded")
    if current:
        console.print(memories)
    console.print(f"windows: {plain(', '.join(shown['windows']) or 'none')}")
    runs = id_table("run", "function", short("status"), ids=[r["id"] for r in shown["runs"]])
    for r in shown["runs"]:
        runs.add_row(*cells(r["id"], r["function_id"], status_text(r["status"])))
    console.print(f"runs: {len(shown['runs'])}, events: {shown['events']}")
    if shown["runs"]:
        console.print(runs)


@app.command()
def export(
    subject_id: SubjectArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON to this file")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Print (or write) everything kept about SUBJECT as one JSON document."""
    th = open_existing(store)
    try:
        doc = _kept(th, subject_id).export()
    finally:
        th.close()
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if output is None:
        print(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    console.print(f"wrote the export of {plain(subject_id)} to {plain(output)}")


@app.command()
def forget(
    subject_id: SubjectArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Delete everything kept about SUBJECT (memories, windows, preferences, its runs and
    their events). Asks first unless --yes. Exit 1 when the deleted bytes could not be
    erased from the store's files yet (run it again later)."""
    th = open_existing(store)
    try:
        subject = _kept(th, subject_id)
        if not yes and not typer.confirm(
            f"Delete everything kept about subject {subject_id!r}? This cannot be undone"
        ):
            console.print("nothing deleted")
            raise typer.Exit(1)
        done = subject.forget()
    finally:
        th.close()
    if as_json:
        _print_json({"subject": subject_id, **done.to_dict()})
    else:
        counts = ", ".join(f"{n} {kind}" for kind, n in done.items())
        console.print(f"forgot subject {plain(subject_id)}: {plain(counts)}")
    if not done.erased:
        fail(str(done.residue))
        raise typer.Exit(1)

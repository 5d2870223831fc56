"""How the ``tether`` command prints: Rich consoles that never read stored text as markup.

Everything that came from user data (run, step, function and event ids, inputs, outputs,
error messages) reaches the terminal as plain text: table cells are ``Text`` objects and
lines built with markup pass each value through ``plain(...)``. The consoles also turn
Rich's emoji codes off, so a ``:warning:`` inside an error message stays as written, and
soft-wrap lines (the terminal wraps them; Rich inserts no newline inside an id or a JSON
value). Tables fit the width, but never cut the ids of their first column.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from tether.records import RunStatus

console = Console(emoji=False, soft_wrap=True)
err = Console(stderr=True, emoji=False, soft_wrap=True)

STATUS_COLOURS = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
}


def plain(value: Any) -> str:
    """``value`` as text safe to put inside a markup string (``[`` cannot open a tag)."""
    return escape(str(value))


def status_text(status: RunStatus | str) -> Text:
    value = status.value if isinstance(status, RunStatus) else str(status)
    return Text(value, style=STATUS_COLOURS.get(value, "white"))


def id_table(first: str, *others: str | Column, ids: list[str]) -> Table:
    """A table whose first column holds ids, shown whole on one line at any width (so they
    can be copied into the next command); the other columns wrap to make room (a ``Column``
    given for one sets how: ``short(...)`` keeps it on one line)."""
    table = Table(show_edge=False)  # no outer frame: two more columns for the content
    width = max([len(i) for i in ids] + [len(first)])
    table.add_column(first, no_wrap=True, min_width=width, overflow="ignore")
    for column in others:
        if isinstance(column, str):
            column = Column(column, overflow="fold")
        table.add_column(
            column.header,
            no_wrap=column.no_wrap,
            min_width=column.min_width,
            overflow=column.overflow,
        )
    return table


def short(header: str) -> Column:
    """A column of short values (a status, a duration) kept on one line."""
    return Column(header, no_wrap=True)


def cells(*values: Any) -> list[Text]:
    """Table cells from user data: never parsed as markup."""
    return [v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in values]


def fail(message: str) -> None:
    """Print an error (``message`` is plain text) on stderr."""
    err.print(Text.assemble(("error: ", "bold red"), message))

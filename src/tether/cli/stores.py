"""The store of a reading command: it must exist already; a typo never creates one.

``tether runs``, ``show``, ``doctor``, ``cancel``, ``replay``, ``prune`` and
``check-replay`` read or change runs that are already stored. Opening a store the usual
way creates it (a new SQLite file, PostgreSQL tables), so a mistyped URL would show an
empty store and leave a new one behind. These commands check first, without creating
anything: the SQLite file must exist, and a PostgreSQL database (or ``?schema=``) must
hold tether's ``tether_meta`` table.
"""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlsplit

import typer

from tether.errors import StoreError
from tether.harness import Harness
from tether.store import DEFAULT_URL, redact_url

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", "-s", help="Store URL (default: TETHER_STORE or .tether/tether.db)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]

HOW_TO_CREATE = (
    "To create a store there, run the app (tether worker APP, or tether dev APP) or "
    "tether migrate --store {url}."
)


def store_url(store: str | None) -> str:
    """The URL a command uses: ``--store``, else ``TETHER_STORE``, else the default."""
    return store or os.environ.get("TETHER_STORE") or DEFAULT_URL


def open_existing(store: str | None) -> Harness:
    """A harness on the store at ``store`` (see ``store_url``), which must exist."""
    url = store_url(store)
    require_store(url)
    return Harness(url)


def require_store(url: str) -> None:
    """Raise ``StoreError`` naming the place and how to create a store, unless ``url``
    names an existing tether store. Creates nothing."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.split("://", 1)[1].split("?", 1)[0]
        path = path[1:] if path.startswith("/") else path
        if path and path != ":memory:" and not os.path.exists(path):
            raise StoreError(
                f"no tether store at {os.path.abspath(path)}: the file does not exist. Check "
                f"the URL (--store or TETHER_STORE: {url}). " + HOW_TO_CREATE.format(url=url)
            )
    elif scheme in ("postgresql", "postgres"):
        _require_pg_tables(url)
    # Other URLs are left to open_store, which names what is wrong with them.


def _require_pg_tables(url: str) -> None:
    from tether.store.postgres_conn import PgConnections

    db = PgConnections(url, "process", lambda: None, pool_size=1)
    try:
        (found,) = db.read("SELECT to_regclass('tether_meta') IS NOT NULL")[0]
    finally:
        db.close()
    if not found:
        where = f"schema {db.schema}" if db.schema else "the database's search path"
        shown = redact_url(url)
        raise StoreError(
            f"no tether store in {where} of {shown}: it has no tether_meta table. Check "
            "the URL (--store or TETHER_STORE; ?schema=NAME picks a schema). "
            + HOW_TO_CREATE.format(url=shown)
        )

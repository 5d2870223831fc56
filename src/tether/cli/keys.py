"""``tether keygen`` and ``tether rekey``: keys for encryption at rest (``store/encryption.py``)."""

from __future__ import annotations

import typer

from tether.cli.output import console, plain
from tether.cli.stores import StoreOpt, require_store, store_url
from tether.store import redact_url


def keygen() -> None:
    """Print a new random encryption key (for TETHER_ENCRYPTION_KEY)."""
    from tether.store.encryption import generate_key

    print(generate_key())


def rekey(store: StoreOpt = None) -> None:
    """Rewrite every payload under the first key of TETHER_ENCRYPTION_KEY (NEW,OLD): after a
    rotation, or to encrypt what was written before encryption was turned on."""
    from tether.store import open_store
    from tether.store.encryption import rekey as rewrite

    url = store_url(store)
    require_store(url)
    opened = open_store(url, create=False)
    try:
        done = rewrite(opened)
    finally:
        opened.close()
    total = sum(done.values())
    console.print(f"{plain(redact_url(url))}: {total} value(s) rewritten under the first key")
    for table, count in done.items():
        if count:
            console.print(f"  {plain(table)}: {count}")


def register(app: typer.Typer) -> None:
    app.command("keygen")(keygen)
    app.command("rekey")(rekey)

"""Storage backends, chosen by URL: ``sqlite:///path/to/file.db`` or
``postgresql://user:password@host:port/db[?schema=name]``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

from tether.errors import ConfigurationError
from tether.store.base import Store
from tether.store.payloads import PayloadCodec

DEFAULT_URL = "sqlite:///.tether/tether.db"

__all__ = ["DEFAULT_URL", "PayloadCodec", "Store", "open_store", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


def encrypting_codec(key: str | Sequence[str] | None = None) -> PayloadCodec | None:
    """The codec for ``key`` (default ``TETHER_ENCRYPTION_KEY``): None when neither is set."""
    source = "encryption_key"
    if key is None:
        key, source = os.environ.get("TETHER_ENCRYPTION_KEY") or None, "TETHER_ENCRYPTION_KEY"
    if not key:
        return None
    from tether.store.encryption import EncryptingCodec

    return EncryptingCodec(key, source)


def open_store(
    url: str | None = None,
    *,
    durability: str = "process",
    create: bool = True,
    codec: PayloadCodec | None = None,
    encryption_key: str | Sequence[str] | None = None,
) -> Store:
    """Open (and migrate) the store at ``url``; default ``TETHER_STORE`` or ``.tether/``.

    ``create=False`` opens only a store that exists (``StoreNotFound`` otherwise, naming
    it and how to create one): for commands that only read. With ``create`` a SQLite
    file is created in an existing folder (a missing ``.tether`` folder is made too).
    ``codec`` encodes every payload column (``PayloadCodec``; identity by default).
    ``encryption_key`` (default ``TETHER_ENCRYPTION_KEY``) encrypts them at rest: a key
    from ``tether keygen``, or a key ring ``"NEW,OLD"`` / ``[new, old]`` (``encryption.py``)."""
    url = url or os.environ.get("TETHER_STORE") or DEFAULT_URL
    if codec is None:
        codec = encrypting_codec(encryption_key)
    elif encryption_key:
        raise ConfigurationError("give open_store a codec or an encryption_key, not both")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url.split("://", 1)[1].split("?", 1)[0]
        path = path[1:] if path.startswith("/") else path
        if not path or path == ":memory:":
            raise ConfigurationError(
                f"store URL {url!r} names no file: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db (an in-memory database cannot be shared by workers)"
            )
        query = parse_qs(parts.query)
        timeout = float(query.get("timeout", ["10"])[0])
        from tether.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(
            path, durability=durability, timeout=timeout, create=create, codec=codec
        )
    elif parts.scheme in ("postgresql", "postgres"):
        from tether.store.postgres import PostgresStore

        store = PostgresStore(url, durability=durability, create=create, codec=codec)
    else:
        raise ConfigurationError(
            f"store URL {url!r} has an unknown scheme {parts.scheme!r}: use "
            "sqlite:///path.db or postgresql://user@host/db"
        )
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store

"""Encryption at rest: an AEAD payload codec (AES-256-GCM, from the ``cryptography`` package).

``TETHER_ENCRYPTION_KEY`` (or ``Harness(encryption_key=...)``, ``open_store(url,
encryption_key=...)``) turns it on for every payload column at once, since they all go
through the store's codec (``payloads.py``). A key is 32 random bytes in URL-safe base64
(``tether keygen`` prints one). A key ring is several keys separated by commas, the newest
first: new values are written with the first key, and each stored value names the id of
the key it was written with (the first 8 hex digits of a hash of the key), so values
written under an older key of the ring stay readable. That is what rotation means here:
put the new key first, keep the old ones after it until nothing written with them is
left (pruned, or rewritten by ``tether rekey``), then drop them.

Stored forms (text, as the columns are text on both backends)::

    tenc1:m<key id>:<base64 of nonce + ciphertext>        data of no subject
    tenc1:s<data key id>:<base64 of nonce + ciphertext>   data of a subject (DESIGN 4b)

Data of a subject is encrypted with a data key of its own: 32 random bytes made on the
first write for that subject, kept in ``subject_keys`` wrapped (encrypted) by the master
key. ``destroy_subject_key(store, subject)`` deletes it, and whatever of the subject is
still on disk (rows a PostgreSQL VACUUM has not reclaimed, old WAL, backups) can no longer
be read by anyone. The authenticated data binds each value to its subject, so a
ciphertext moved to another subject fails to decrypt.

A wrong or missing key is an ``EncryptionKeyError`` naming the fix, never garbage and
never plaintext: the store records the ids of the keys it was written with
(``tether_meta``), so opening it with none of them, or without a key at all, fails at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import EncryptionError, EncryptionKeyError, SubjectKeyDestroyed
from tether.store.payloads import PayloadCodec

if TYPE_CHECKING:
    from tether.store.executor import Tx

PREFIX = "tenc1:"
META_KEY_IDS = "encryption_key_ids"  # tether_meta: ids of the master keys values were written with
ENV = "TETHER_ENCRYPTION_KEY"
INSTALL = 'pip install "tether[encryption]"'
NONCE = 12


def generate_key() -> str:
    """A new random master key, as ``TETHER_ENCRYPTION_KEY`` takes it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def key_id(key: bytes) -> str:
    """The id a stored value gives for the master key it was written with."""
    return hashlib.sha256(b"tether-key-id:" + key).hexdigest()[:8]


def parse_keys(given: str | Sequence[str], source: str = "encryption_key") -> list[bytes]:
    """The raw keys of a key ring: a key, ``"NEW,OLD"``, or a list, the newest first."""
    parts = given.split(",") if isinstance(given, str) else list(given)
    keys: list[bytes] = []
    for n, part in enumerate(p.strip() for p in parts):
        if not part:
            continue
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            # The message never repeats the key: it is a secret, and messages reach logs.
            raise EncryptionKeyError(
                f"{source}: key {n + 1} of the key ring is not a key (expected 32 bytes in "
                "URL-safe base64, 44 characters). Make one with `tether keygen`; several "
                "keys are separated by commas, the newest first."
            )
        keys.append(raw)
    if not keys:
        raise EncryptionKeyError(f"{source} holds no key: make one with `tether keygen`")
    return keys


def _aead(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise EncryptionError(
            f"encryption at rest needs the cryptography package: {INSTALL}"
        ) from None
    return AESGCM(key)


class EncryptingCodec(PayloadCodec):
    """Payloads encrypted with AES-256-GCM under a key ring (see the module docstring)."""

    searchable = False

    def __init__(self, keys: str | Sequence[str], source: str = "encryption_key") -> None:
        raw = parse_keys(keys, source)
        self._masters = {key_id(k): _aead(k) for k in reversed(raw)}  # the first key wins a clash
        self.write_id = key_id(raw[0])
        self.key_ids = [key_id(k) for k in raw]
        self._store: Any = None

    def __repr__(self) -> str:  # never the keys
        return f"EncryptingCodec(key_ids={self.key_ids})"

    # -- opening a store -----------------------------------------------------------------
    def attach(self, store: Any, tx: Tx) -> None:
        self._store = store
        row = tx.one("SELECT value FROM tether_meta WHERE key=?", (META_KEY_IDS,))
        seen = [k for k in (row[0] if row else "").split(",") if k]
        if seen and not set(seen) & set(self.key_ids):
            raise EncryptionKeyError(
                f"{store._describe()} was encrypted with key id(s) {', '.join(seen)}, and "
                f"none of the keys given matches (their ids: {', '.join(self.key_ids)}). Set "
                f"{ENV} to the key the store was written with; to rotate, give the new "
                "key first and the old one after it: NEW,OLD."
            )
        if self.write_id not in seen:
            tx.execute(
                "INSERT INTO tether_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (META_KEY_IDS, ",".join([*seen, self.write_id])),
            )

    # -- the codec -----------------------------------------------------------------------
    def encode(self, text: str, subject: str | None = None) -> str:
        nonce = os.urandom(NONCE)
        if subject is None:
            sealed = self._masters[self.write_id].encrypt(nonce, text.encode(), b"tether:m")
            return f"{PREFIX}m{self.write_id}:{_b64(nonce + sealed)}"
        dkid, aead = self._data_key(subject, create=True)
        sealed = aead.encrypt(nonce, text.encode(), _subject_aad(subject))
        return f"{PREFIX}s{dkid}:{_b64(nonce + sealed)}"

    def decode(self, stored: str | bytes, subject: str | None = None) -> str:
        text = stored if isinstance(stored, str) else bytes(stored).decode()
        if not text.startswith(PREFIX):
            raise EncryptionError(
                "a payload of this store is not encrypted, although encryption is on: it was "
                "written before encryption was turned on (or around the codec). Run "
                "`tether rekey` to encrypt the store's payloads in place."
            )
        head, _, body = text[len(PREFIX) :].partition(":")
        kind, kid = head[:1], head[1:]
        try:
            blob = binascii.a2b_base64(body, strict_mode=True)
        except (binascii.Error, ValueError):
            blob = b""
        if kind == "m":
            aead = self._masters.get(kid)
            if aead is None:
                raise EncryptionKeyError(
                    f"a stored value was encrypted with key id {kid}, which is not in the key "
                    f"ring (ids: {', '.join(self.key_ids)}): add that key to {ENV} after the "
                    "current one (NEW,OLD)"
                )
            aad = b"tether:m"
        elif kind == "s" and subject is not None:
            found = self._data_key(subject, create=False, expect=kid)
            assert found is not None
            aead, aad = found[1], _subject_aad(subject)
        else:
            raise EncryptionError(
                "a stored value was encrypted with a subject's key but read without naming "
                "the subject (a bug in the code reading it: pass subject= to decode)"
                if kind == "s"
                else "a stored value is not in tether's encrypted form: it is damaged"
            )
        return self._open(aead, blob, aad).decode()

    @staticmethod
    def _open(aead: Any, blob: bytes, aad: bytes) -> bytes:
        try:
            plain: bytes = aead.decrypt(blob[:NONCE], blob[NONCE:], aad)
        except (_invalid_tag(), ValueError):
            raise EncryptionError(
                "a stored value failed authentication: it was altered or damaged on disk, or "
                "written for another subject. Restore the store from a backup."
            ) from None
        return plain

    # -- subjects' data keys -------------------------------------------------------------
    def _data_key(self, subject: str, *, create: bool, expect: str | None = None) -> Any:
        """(data key id, AEAD) of ``subject``: in the transaction under way on this thread
        if there is one, else in a transaction of its own. Read every time (one indexed
        row), so a key destroyed by another process is never used from a cache."""
        store = self._store
        if store is None:
            raise EncryptionError("the codec is not attached to a store: open it with open_store")
        tx = store.active_tx()
        if tx is not None:
            row = self._key_row(tx, subject, create)
        elif create:
            row = store.write(lambda t: self._key_row(t, subject, True))
        else:
            row = store.reading(lambda t: self._key_row(t, subject, False))
        if row is None or (expect is not None and row[0] != expect):
            raise SubjectKeyDestroyed(
                f"the data of subject {subject!r} can no longer be read: its key was "
                "destroyed when the subject was forgotten (what is left is ciphertext)"
            )
        dkid, master_id, wrapped = row
        master = self._masters.get(master_id)
        if master is None:
            raise EncryptionKeyError(
                f"the key of subject {subject!r} is wrapped with master key id {master_id}, "
                f"which is not in the key ring (ids: {', '.join(self.key_ids)}): add that "
                f"key to {ENV} after the current one (NEW,OLD)"
            )
        raw = self._open(master, base64.b64decode(wrapped), _wrap_aad(subject))
        return dkid, _aead(raw)

    def _key_row(self, tx: Tx, subject: str, create: bool) -> tuple[str, str, str] | None:
        sql = "SELECT key_id, master_id, wrapped FROM subject_keys WHERE subject=?"
        row = tx.one(sql, (subject,))
        if row is None and create:
            nonce, key = os.urandom(NONCE), secrets.token_bytes(32)
            sealed = self._masters[self.write_id].encrypt(nonce, key, _wrap_aad(subject))
            tx.execute(
                "INSERT INTO subject_keys (subject, key_id, master_id, wrapped, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject) DO NOTHING",
                (subject, secrets.token_hex(4), self.write_id, _b64(nonce + sealed), _now()),
            )
            row = tx.one(sql, (subject,))
        return None if row is None else (row[0], row[1], row[2])

    # -- rotation --------------------------------------------------------------------------
    def reencrypt(self, stored: str, subject: str | None = None) -> str | None:
        """``stored`` written again under the first key, or None when it already is."""
        if stored.startswith(f"{PREFIX}m{self.write_id}:") or stored.startswith(f"{PREFIX}s"):
            return None
        plain = stored if not stored.startswith(PREFIX) else self.decode(stored, subject)
        return self.encode(plain, subject)

    def rewrap(self, tx: Tx) -> int:
        """Wrap every subject's data key with the first key; return how many changed."""
        rows = tx.all(
            "SELECT subject, master_id, wrapped FROM subject_keys WHERE master_id<>?",
            (self.write_id,),
        )
        for subject, master_id, wrapped in rows:
            master = self._masters.get(master_id)
            if master is None:
                raise EncryptionKeyError(
                    f"the key of subject {subject!r} is wrapped with master key id {master_id},"
                    f" which is not in the key ring: add it to {ENV} after the new key"
                )
            raw = self._open(master, base64.b64decode(wrapped), _wrap_aad(subject))
            nonce = os.urandom(NONCE)
            sealed = self._masters[self.write_id].encrypt(nonce, raw, _wrap_aad(subject))
            tx.execute(
                "UPDATE subject_keys SET master_id=?, wrapped=? WHERE subject=?",
                (self.write_id, _b64(nonce + sealed), subject),
            )
        return len(rows)


def destroy_subject_key(tx: Tx, subject: str) -> bool:
    """Delete ``subject``'s data key (in ``tx``); whether there was one."""
    return bool(tx.changed("DELETE FROM subject_keys WHERE subject=?", (subject,)))


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


_INVALID_TAG: Any = None


def _invalid_tag() -> type[Exception]:
    global _INVALID_TAG
    if _INVALID_TAG is None:
        from cryptography.exceptions import InvalidTag

        _INVALID_TAG = InvalidTag
    return _INVALID_TAG  # type: ignore[no-any-return]


def _subject_aad(subject: str) -> bytes:
    return b"tether:s:" + subject.encode()


def _wrap_aad(subject: str) -> bytes:
    return b"tether:k:" + subject.encode()


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class PayloadTable:
    """Where ``tether rekey`` finds payloads: a table, its key columns, its payload
    columns, and the column naming each row's subject (None: data of no subject)."""

    table: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    subject: str | None = None


# ``rekey`` rewrites the payloads listed here. A feature module whose table holds payloads
# adds itself with ``payload_table(...)`` when it is imported (memories, window items).
PAYLOAD_TABLES: list[PayloadTable] = [
    PayloadTable("runs", ("id",), ("input", "output", "error", "batch_events")),
    PayloadTable("steps", ("run_id", "step_id"), ("output", "error")),
    PayloadTable("events", ("id",), ("data",)),
    PayloadTable("attempts", ("run_id", "step_id", "number"), ("error_message", "traceback")),
    PayloadTable(
        "langgraph_checkpoints",
        ("thread_id", "checkpoint_ns", "checkpoint_id"),
        ("checkpoint", "metadata"),
    ),
    PayloadTable(
        "langgraph_writes",
        ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
        ("value",),
    ),
    PayloadTable("subjects", ("id",), ("preferences",), "id"),
    PayloadTable("memories", ("id",), ("text", "source"), "subject"),
    PayloadTable(
        "window_items",
        ("window_key", "seq"),
        ("payload",),
        "(SELECT subject FROM windows WHERE windows.key = window_items.window_key)",
    ),
]


def payload_table(
    table: str, keys: Sequence[str], columns: Sequence[str], subject: str | None = None
) -> None:
    """Register a table's payload columns for ``tether rekey`` (identifiers, never input)."""
    entry = PayloadTable(table, tuple(keys), tuple(columns), subject)
    if entry not in PAYLOAD_TABLES:
        PAYLOAD_TABLES.append(entry)


def rekey(store: Any, batch: int = 500) -> dict[str, int]:
    """Rewrite every payload of ``store`` under the first key of its codec's ring (values
    in clear, from before encryption was on, are encrypted); wrap every subject's data key
    with it. Returns the values rewritten per table. Safe to stop and run again."""
    codec = store.codec
    if not isinstance(codec, EncryptingCodec):
        raise EncryptionKeyError(f"tether rekey needs the store's key ring: set {ENV}=NEW,OLD")
    done = {"subject_keys": store.write(codec.rewrap, sync=True)}
    for entry in PAYLOAD_TABLES:
        if not store.reading(lambda tx, t=entry.table: _exists(tx, t)):
            continue
        done[entry.table] = 0
        keys = ", ".join(entry.keys)
        who = entry.subject or "NULL"
        for column in entry.columns:
            # Identifiers come from PAYLOAD_TABLES, never from input.
            select = f"SELECT {keys}, {who}, {column} FROM {entry.table} WHERE {column} IS NOT NULL"
            update = f"UPDATE {entry.table} SET {column}=? WHERE " + " AND ".join(
                f"{k}=?" for k in entry.keys
            )
            pending: list[tuple[Any, ...]] = []
            for row in store.iter_rows(select):
                fresh = codec.reencrypt(row[-1], row[-2])
                if fresh is not None:
                    pending.append((fresh, *row[:-2]))
                if len(pending) >= batch:
                    done[entry.table] += _update(store, update, pending)
                    pending = []
            done[entry.table] += _update(store, update, pending)
    return done


def _exists(tx: Tx, table: str) -> bool:
    if tx.d.name == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
    else:
        sql = "SELECT 1 FROM information_schema.tables WHERE table_schema=current_schema() AND table_name=?"
    return tx.one(sql, (table,)) is not None


def _update(store: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
    if rows:
        store.write(lambda tx: tx.many(sql, rows))
    return len(rows)

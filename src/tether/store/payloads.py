"""The payload codec: how the store keeps what users hand it.

Every payload column goes through the store's one ``PayloadCodec`` (``store.codec``) on
its way in and out: run inputs, outputs and errors, step outputs and errors, attempts'
error messages and tracebacks, event data and batched events (and, as they come, context
window items and memories). The default keeps the JSON text as it is; a subclass that
encrypts (``encode`` returning text, e.g. base64 of a ciphertext, since the columns are
text on both backends) turns on encryption at rest for all of them at once.

What the store matches or sorts on in SQL is not a payload and stays as given: ids,
function ids, event names, flow-control keys, ``wait_for_event`` match values, reasons,
timestamps. The dashboard's text search reads the stored text, so it searches payloads
only while the codec keeps them readable (``searchable``); encryption (``encryption.py``)
turns that off and the search matches run ids only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.errors import EncryptionKeyError

if TYPE_CHECKING:
    from tether.store.executor import Tx


class PayloadCodec:
    """The identity codec: payloads are stored as the JSON text they are."""

    # Whether SQL may match text inside payload columns (the dashboard's search): False
    # for a codec whose stored form says nothing about the text (encryption).
    searchable = True

    def attach(self, store: Any, tx: Tx) -> None:
        """Called in the transaction that opens (migrates) ``store``: refuse a store whose
        payloads are encrypted, since this codec would hand out ciphertext as text."""
        row = tx.one("SELECT value FROM tether_meta WHERE key='encryption_key_ids'")
        if row and row[0]:
            raise EncryptionKeyError(
                f"{store._describe()} holds encrypted payloads (key id(s) {row[0]}) and no "
                "key was given: set TETHER_ENCRYPTION_KEY to the store's key (or pass "
                "Harness(encryption_key=...) / open_store(url, encryption_key=...))."
            )

    def encode(self, text: str, subject: str | None = None) -> str:
        """The stored form of ``text``. ``subject`` names whose data it is (DESIGN 4b), for a
        codec that keeps a key per subject; None for data that belongs to no subject."""
        return text

    def decode(self, stored: str | bytes, subject: str | None = None) -> str:
        """The text ``encode`` was given (``stored`` as the database returns it)."""
        return stored if isinstance(stored, str) else bytes(stored).decode()

    def encode_opt(self, text: str | None, subject: str | None = None) -> str | None:
        return None if text is None else self.encode(text, subject)

    def decode_opt(self, stored: str | bytes | None, subject: str | None = None) -> str | None:
        return None if stored is None else self.decode(stored, subject)


IDENTITY = PayloadCodec()

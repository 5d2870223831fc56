"""Identifiers, paths and numbers in text: what a summary must not drop."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PATH = re.compile(
    r"(?<![\w/])(?:~|\.{1,2})?/?(?:[\w.-]+/)+[\w.-]+|\b[\w-]+\.(?:py|js|ts|tsx|md|json|ya?ml|toml|txt|csv|sql|sh|go|rs|java|rb|c|h|cpp|html|css|log|ini|cfg|xml|pdf)\b"
)
_ID = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*\b")
_HEX = re.compile(r"\b[0-9a-fA-F]{8,}(?:-[0-9a-fA-F]{4,})*\b")
_NUMBER = re.compile(r"(?<![\w./-])\d+(?:[.,:]\d+)*(?![\w])")


def identifiers(text: str) -> set[str]:
    """Paths (``src/app.py``), ids with letters and digits (``ORD-1234``, ``v2``) and hashes."""
    found = set(_PATH.findall(text)) | set(_HEX.findall(text))
    found |= {m for m in _ID.findall(text) if len(m) >= 3}
    return found


def numbers(text: str) -> set[str]:
    return {n.rstrip(".,:") for n in _NUMBER.findall(text) if n.rstrip(".,:")}


def protected(text: str) -> set[str]:
    return identifiers(text) | numbers(text)


def missing(required: Iterable[str], text: str) -> list[str]:
    """The required terms ``text`` does not contain (as written)."""
    return sorted(t for t in set(required) if t not in text)

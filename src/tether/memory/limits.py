"""What a memory accepts: the limits on its text and tags, checked before anything is written."""

from __future__ import annotations

from collections.abc import Iterable

from tether.errors import InvalidMemory

#: bytes of UTF-8 a memory's text may take (a fact, a preference, a note; not a document)
MAX_TEXT_BYTES = 32 * 1024
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_K = 1000


def check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise InvalidMemory(f"a memory's {what} is a str, got {type(text).__name__}")
    if not text.strip():
        raise InvalidMemory(f"a memory's {what} is empty: give the fact to remember")
    size = len(text.encode())
    if size > MAX_TEXT_BYTES:
        raise InvalidMemory(
            f"a memory's {what} is {size} bytes, over the limit of {MAX_TEXT_BYTES} "
            "(32 KiB): keep one fact per memory, or store documents elsewhere and remember "
            "a summary with a reference (source=)"
        )
    return text


def check_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise InvalidMemory(
            f"tags is a list of strings, got the string {tags!r}: write tags=({tags!r},)"
        )
    out = tuple(dict.fromkeys(tags))
    if len(out) > MAX_TAGS:
        raise InvalidMemory(f"a memory takes at most {MAX_TAGS} tags, got {len(out)}")
    for tag in out:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_CHARS:
            raise InvalidMemory(
                f"tag {tag!r} is not a non-empty string of at most {MAX_TAG_CHARS} characters"
            )
    return out


def check_source(source: object) -> str | None:
    if source is None:
        return None
    if not isinstance(source, str) or len(source) > 1024:
        raise InvalidMemory(f"source is a string of at most 1024 characters, got {source!r:.80}")
    return source


def check_k(k: object) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidMemory(f"k is the number of hits wanted, an int from 1 to {MAX_K}; got {k!r}")
    return k

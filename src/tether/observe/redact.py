"""Redaction of secrets and personal data wherever data leaves the store.

The store keeps real values (replay needs them); traces, logs, metrics, the dashboard and
its API show what ``Redactor`` returns. Built in: API keys and bearer tokens (OpenAI,
Anthropic, Google, AWS, GitHub, Slack styles), values under secret-looking keys
(``api_key``, ``password``, ``authorization``...), email addresses and card numbers (13 to
19 digits passing the Luhn check). More patterns come from ``TETHER_REDACT_PATTERNS``
(regular expressions separated by newlines or ``;;``) or ``Redactor(extra=[...])``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"

SECRET_KEYS = re.compile(
    r"(?i)(?:.*[-_.])?(?:api[-_]?key|apikey|secret|password|passwd|token|authorization|"
    r"auth[-_]?header|private[-_]?key|access[-_]?key|credentials?|cookie)"
)

_KEY_PATTERNS = [
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}",  # OpenAI, Anthropic
    r"\bAIza[0-9A-Za-z_\-]{30,}",  # Google
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub
    r"\bxox[abpors]-[A-Za-z0-9\-]{10,}",  # Slack
    r"(?i:\bbearer)\s+[A-Za-z0-9._~+/=\-]{12,}",
    r"(?i:\b(?:api[-_]?key|password|secret|token))\s*[=:]\s*['\"]?[^\s'\",;&]{6,}",
]
_EMAIL = r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"
_CARD = re.compile(r"\b(?:\d[ \-]?){12,18}\d\b")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ \-]", "", match.group(0))
    return MASK if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def env_patterns() -> list[str]:
    raw = os.environ.get("TETHER_REDACT_PATTERNS", "")
    return [p.strip() for p in re.split(r"\n|;;", raw) if p.strip()]


class Redactor:
    """Masks secrets and configured patterns in strings and JSON-like values."""

    def __init__(
        self, extra: Iterable[str] = (), *, emails: bool = True, cards: bool = True
    ) -> None:
        patterns = list(_KEY_PATTERNS)
        if emails:
            patterns.append(_EMAIL)
        patterns.extend(extra)
        patterns.extend(env_patterns())
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns))
        self._cards = cards

    def text(self, value: str) -> str:
        out = self._pattern.sub(MASK, value)
        if self._cards and any(c.isdigit() for c in out):
            out = _CARD.sub(_card, out)
        return out

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with secrets masked (keys named like secrets too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                k: MASK
                if isinstance(k, str) and SECRET_KEYS.fullmatch(k) and v not in (None, "")
                else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


_default: Redactor | None = None


def default_redactor() -> Redactor:
    """The process-wide redactor (built-in patterns plus ``TETHER_REDACT_PATTERNS``)."""
    global _default
    if _default is None:
        _default = Redactor()
    return _default


def redact(value: Any) -> Any:
    """Mask secrets and configured patterns in a string or JSON-like value."""
    return default_redactor().value(value)


__all__ = ["MASK", "Redactor", "default_redactor", "redact"]

"""Durations written as seconds (a number), a ``timedelta`` or a string: "30s", "5m", "1h", "2d"."""

from __future__ import annotations

import re
from datetime import timedelta

from tether.errors import ConfigurationError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

Duration = float | int | str | timedelta


def seconds(value: Duration, what: str = "duration") -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise ConfigurationError(f"{what}: {value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigurationError(f"{what}: {value!r} is negative; durations are >= 0")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos == len(text) and text:
            return total
        try:
            return seconds(float(text), what)
        except ValueError:
            pass
    raise ConfigurationError(
        f"{what}: {value!r} is not a duration; use seconds (30), a timedelta, or a string "
        "such as '30s', '5m', '1h30m', '2d'"
    )

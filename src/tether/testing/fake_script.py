"""A FakeLLMServer schedule given as data (a JSON file, an HTTP body), checked whole.

    [
      {"fault": "server_error", "match": "ticket 1"},
      {"fault": "rate_limit", "retry_after": 2, "model": "gpt-4.1-mini", "times": 3},
      {"reply": "{\\"label\\": \\"billing\\"}", "usage": {"input_tokens": 50, "output_tokens": 9}}
    ]

or ``{"script": [...], "default": {"reply": "..."}, "random_faults": {"rate": 0.3, "kinds":
["server_error", "hang"], "seed": 1}}``. Each entry takes the arguments of
``FakeLLMServer.reply`` / ``fault``; ``reply`` or ``fault`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.errors import ConfigurationError
from tether.testing.fake_wire import FAULT_KINDS, Fault, Reply

_COMMON = {"model": str, "match": str, "times": int}
_REPLY = {
    "reply": str,
    "tool_calls": list,
    "usage": dict,
    "finish_reason": str,
    "delay": (int, float),
}
_FAULT = {
    "fault": str,
    "retry_after": (int, float),
    "retry_after_ms": int,
    "retry_after_date": bool,
    "hang": (int, float),
    "prompt_tokens": int,
    "context_window": int,
}
_RANDOM = {
    "rate": (int, float),
    "kinds": list,
    "seed": int,
    "model": str,
    "sticky_rate_limits": bool,
}
_TOP = ("script", "default", "random_faults")


@dataclass
class Schedule:
    entries: list[tuple[Reply | Fault, str | None, str | None, int]] = field(default_factory=list)
    default: Reply | None = None
    random: dict[str, Any] | None = None


def _check(where: str, entry: Any, allowed: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: expected a JSON object, got {entry!r}")
    for key, value in entry.items():
        if key not in allowed:
            raise ConfigurationError(
                f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(allowed))}"
            )
        kind = allowed[key]
        if value is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        ):
            raise ConfigurationError(f"{where}: {key!r} has the wrong type: {value!r}")
    return entry


def _reply(where: str, entry: dict[str, Any]) -> Reply:
    return Reply(
        text=entry.get("reply") or "",
        tool_calls=list(entry.get("tool_calls") or []),
        usage=entry.get("usage"),
        finish_reason=entry.get("finish_reason"),
        delay=float(entry.get("delay") or 0.0),
    )


def _fault(where: str, entry: dict[str, Any]) -> Fault:
    kind = entry["fault"]
    if kind not in FAULT_KINDS:
        raise ConfigurationError(
            f"{where}: unknown fault {kind!r}; choose one of {', '.join(FAULT_KINDS)}"
        )
    options = {k: v for k, v in entry.items() if k in _FAULT and k != "fault"}
    return Fault(kind, **options)


def _entry(where: str, raw: Any) -> tuple[Reply | Fault, str | None, str | None, int]:
    if isinstance(raw, dict) and "fault" in raw:
        entry = _check(where, raw, {**_COMMON, **_FAULT})
        item: Reply | Fault = _fault(where, entry)
    elif isinstance(raw, dict) and "reply" in raw:
        item = _reply(where, _check(where, raw, {**_COMMON, **_REPLY}))
        entry = raw
    else:
        raise ConfigurationError(
            f'{where}: an entry needs "reply": TEXT or "fault": KIND, got {raw!r}'
        )
    times = entry.get("times", 1)
    if times < 1:
        raise ConfigurationError(f"{where}: times must be at least 1, got {times}")
    return item, entry.get("model"), entry.get("match"), times


def parse_script(schedule: Any) -> Schedule:
    """Check a whole schedule and turn it into queue entries; raises ``ConfigurationError``."""
    if isinstance(schedule, list):
        schedule = {"script": schedule}
    if not isinstance(schedule, dict):
        raise ConfigurationError(
            "a FakeLLMServer script is a JSON list of entries or an object with "
            f"{', '.join(_TOP)}; got {type(schedule).__name__}"
        )
    unknown = sorted(set(schedule) - set(_TOP))
    if unknown:
        raise ConfigurationError(
            f"unknown script key(s) {', '.join(unknown)}; valid keys: {', '.join(_TOP)}"
        )
    out = Schedule()
    entries = schedule.get("script") or []
    if not isinstance(entries, list):
        raise ConfigurationError(f'"script" must be a list of entries, got {entries!r}')
    out.entries = [_entry(f"script entry #{i + 1}", raw) for i, raw in enumerate(entries)]
    if schedule.get("default") is not None:
        default = _check("default", schedule["default"], _REPLY)
        out.default = _reply("default", default)
    if schedule.get("random_faults") is not None:
        rnd = _check("random_faults", schedule["random_faults"], _RANDOM)
        if "rate" not in rnd or "kinds" not in rnd:
            raise ConfigurationError('random_faults needs "rate" and "kinds"')
        for kind in rnd["kinds"]:
            if kind not in FAULT_KINDS:
                raise ConfigurationError(
                    f"random_faults: unknown fault {kind!r}; choose one of {', '.join(FAULT_KINDS)}"
                )
        out.random = dict(rnd)
    return out

"""One closed classifier for every failure of an LLM call.

Whatever the provider and wire format, a failure is reduced to an ``ErrorKind`` and the kind
decides the ``Action``. Inputs are what reached us: an HTTP status, headers and body; a
transport exception; an SSE ``error`` event; or a finish reason on a 200 reply.

    kind                      action               why
    rate_limited              retry (server delay)  429; the delay is the server's when it gives one
    quota_exhausted           fail over             billing / insufficient_quota / a per-day quota
    overloaded                retry (or fail over)  503, Anthropic 529 (also as an SSE event)
    server_error              retry                 500, 502, other 5xx, 409, an unreadable reply
    timeout                   retry once, fail over 408, 504, client-side timeouts
    context_length_exceeded   compact or upgrade    the prompt does not fit this model
    content_filtered          fail                  refusal, safety block
    auth                      fail over             401/403: never retried on this provider
    bad_request               fail                  other 4xx: the request itself is wrong
    invalid_output            re-ask                output does not validate, bad tool-call JSON
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    CONTENT_FILTERED = "content_filtered"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    INVALID_OUTPUT = "invalid_output"


class Action(StrEnum):
    RETRY = "retry"
    FAILOVER = "failover"
    COMPACT_OR_UPGRADE = "compact_or_upgrade"
    REASK = "reask"
    FAIL = "fail"


ACTIONS: dict[ErrorKind, Action] = {
    ErrorKind.RATE_LIMITED: Action.RETRY,
    ErrorKind.QUOTA_EXHAUSTED: Action.FAILOVER,
    ErrorKind.OVERLOADED: Action.RETRY,
    ErrorKind.SERVER_ERROR: Action.RETRY,
    ErrorKind.TIMEOUT: Action.RETRY,
    ErrorKind.CONTEXT_LENGTH_EXCEEDED: Action.COMPACT_OR_UPGRADE,
    ErrorKind.CONTENT_FILTERED: Action.FAIL,
    ErrorKind.AUTH: Action.FAILOVER,
    ErrorKind.BAD_REQUEST: Action.FAIL,
    ErrorKind.INVALID_OUTPUT: Action.REASK,
}

#: Kinds that say the provider is unhealthy: they count towards opening its circuit, and so
#: does a 429 without a server delay. A 429 that came with one is rate limiting, not a
#: broken provider.
CIRCUIT_KINDS = frozenset({ErrorKind.OVERLOADED, ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT})


@dataclass(frozen=True)
class Classification:
    kind: ErrorKind
    status: int | None = None
    retry_after: float | None = None
    per_day: bool = False
    code: str | None = None
    message: str = ""
    requested_tokens: int | None = None
    context_window: int | None = None

    @property
    def action(self) -> Action:
        if self.per_day:
            return Action.FAILOVER
        return ACTIONS[self.kind]

    def summary(self) -> str:
        parts = [self.kind.value]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        return f"{head}: {self.message}" if self.message else head


# ---------------------------------------------------------------- server delays


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, then ``Retry-After`` (seconds or HTTP date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _gemini_details(body: Mapping[str, Any]) -> tuple[float | None, bool]:
    """``RetryInfo.retryDelay`` and whether a ``QuotaFailure`` names a per-day quota."""
    err = body.get("error")
    details = err.get("details") if isinstance(err, Mapping) else None
    delay: float | None = None
    per_day = False
    for d in details if isinstance(details, list) else []:
        if not isinstance(d, Mapping):
            continue
        kind = str(d.get("@type", ""))
        if kind.endswith("RetryInfo"):
            m = _DURATION.match(str(d.get("retryDelay", "")))
            if m:
                delay = float(m.group(1))
        elif kind.endswith("QuotaFailure"):
            for v in d.get("violations") or []:
                if isinstance(v, Mapping) and "perday" in str(v.get("quotaId", "")).lower():
                    per_day = True
    return delay, per_day


# ---------------------------------------------------------------- HTTP errors

_CONTEXT_PATTERNS = (
    re.compile(
        r"maximum context length is (?P<limit>\d+) tokens.*?resulted in (?P<req>\d+) tokens", re.S
    ),
    re.compile(r"prompt is too long: (?P<req>\d+) tokens > (?P<limit>\d+) maximum"),
    re.compile(
        r"input token count \((?P<req>\d+)\) exceeds the maximum number of tokens allowed \((?P<limit>\d+)\)"
    ),
    re.compile(r"[Rr]equested tokens \((?P<req>\d+)\) exceed context window of (?P<limit>\d+)"),
)
_CONTEXT_WORDS = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|prompt is too long|context window"
    r"|exceeds the maximum number of tokens|model_context_window_exceeded",
    re.I,
)


def _context(message: str) -> tuple[int | None, int | None]:
    for pattern in _CONTEXT_PATTERNS:
        m = pattern.search(message)
        if m:
            return int(m.group("req")), int(m.group("limit"))
    return None, None


def _error_fields(body: Any) -> tuple[str, str, str]:
    """(type, code, message) from an OpenAI, Anthropic or Gemini error body."""
    if not isinstance(body, Mapping):
        return "", "", str(body or "")[:300]
    err = body.get("error", body)
    if not isinstance(err, Mapping):
        return "", "", str(err)[:300]
    etype = str(err.get("type") or err.get("status") or "")
    code = str(err.get("code") or "")
    message = str(err.get("message") or "")
    return etype, code, message[:300]


def classify_http(status: int, headers: Mapping[str, str], body: Any) -> Classification:
    """Classify an HTTP error reply (or an SSE error event, with ``status=0``)."""
    etype, code, message = _error_fields(body)
    retry_after = parse_retry_after(headers)
    gemini_delay, per_day = _gemini_details(body) if isinstance(body, Mapping) else (None, False)
    if retry_after is None:
        retry_after = gemini_delay
    tag = (code if code and not code.isdigit() else etype) or None
    words = f"{etype} {code} {message}"

    def make(kind: ErrorKind, **kw: Any) -> Classification:
        return Classification(
            kind, status=status or None, retry_after=retry_after, code=tag, message=message, **kw
        )

    if "context_length_exceeded" in words or (
        status in (0, 400, 413, 422) and _CONTEXT_WORDS.search(message)
    ):
        req, limit = _context(message)
        return make(ErrorKind.CONTEXT_LENGTH_EXCEEDED, requested_tokens=req, context_window=limit)
    if code == "insufficient_quota" or etype == "billing_error" or status == 402:
        return make(ErrorKind.QUOTA_EXHAUSTED)
    if etype == "FAILED_PRECONDITION" and "billing" in message.lower():
        return make(ErrorKind.QUOTA_EXHAUSTED)
    if status == 429 or etype in ("rate_limit_error", "RESOURCE_EXHAUSTED"):
        if per_day:
            return make(ErrorKind.QUOTA_EXHAUSTED, per_day=True)
        return make(ErrorKind.RATE_LIMITED)
    if status in (503, 529) or etype in ("overloaded_error", "UNAVAILABLE"):
        return make(ErrorKind.OVERLOADED)
    if status in (408, 504) or etype in ("timeout_error", "DEADLINE_EXCEEDED"):
        return make(ErrorKind.TIMEOUT)
    if (
        status >= 500
        or status == 409
        or "server_error" in (etype, code)
        or etype in ("api_error", "INTERNAL")
    ):
        return make(ErrorKind.SERVER_ERROR)
    if status in (401, 403) or etype in (
        "authentication_error",
        "permission_error",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    ):
        return make(ErrorKind.AUTH)
    if code in ("content_filter", "content_policy_violation") or "safety" in etype.lower():
        return make(ErrorKind.CONTENT_FILTERED)
    return make(ErrorKind.BAD_REQUEST)


def classify_transport(exc: BaseException) -> Classification:
    """A request that got no HTTP reply: timeouts, refused or reset connections."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or "timeout" in name.lower():
        return Classification(
            ErrorKind.TIMEOUT, code=name, message="no reply before the attempt timeout"
        )
    return Classification(
        ErrorKind.SERVER_ERROR, code=name, message=f"transport error: {str(exc)[:200]}"
    )


def classify_local(exc: BaseException) -> Classification:
    """An exception from the in-process llama.cpp model."""
    message = str(exc)
    req, limit = _context(message)
    if req is not None or _CONTEXT_WORDS.search(message):
        return Classification(
            ErrorKind.CONTEXT_LENGTH_EXCEEDED,
            code=type(exc).__name__,
            message=message[:300],
            requested_tokens=req,
            context_window=limit,
        )
    return Classification(ErrorKind.SERVER_ERROR, code=type(exc).__name__, message=message[:300])


_FILTER_REASONS = frozenset(
    {
        "content_filter",
        "refusal",
        "safety",
        "recitation",
        "prohibited_content",
        "blocklist",
        "spii",
        "image_safety",
        "jailbreak",
    }
)


def classify_finish(raw_reason: str | None) -> Classification | None:
    """A failure signalled by a 200 reply's finish/stop reason, or ``None`` if it is fine."""
    reason = (raw_reason or "").lower()
    if reason in _FILTER_REASONS:
        return Classification(
            ErrorKind.CONTENT_FILTERED, code=reason, message="the reply was filtered"
        )
    if reason == "model_context_window_exceeded":
        return Classification(ErrorKind.CONTEXT_LENGTH_EXCEEDED, code=reason)
    if reason == "malformed_function_call":
        return Classification(
            ErrorKind.INVALID_OUTPUT, code=reason, message="malformed function call"
        )
    return None


def invalid_output(message: str) -> Classification:
    return Classification(ErrorKind.INVALID_OUTPUT, message=message[:2000])

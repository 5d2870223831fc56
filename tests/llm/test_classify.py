"""The classifier against error payloads recorded from each provider (research notes §2)."""

from __future__ import annotations

import email.utils
import time

import pytest

from tether.llm.classify import (
    Action,
    ErrorKind,
    classify_finish,
    classify_http,
    classify_local,
    parse_retry_after,
)

OPENAI_CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130412 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
OPENAI_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
OPENAI_RATE = {
    "error": {
        "message": "Rate limit reached for gpt-4.1-mini on requests per min (RPM): Limit 500.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
ANTHROPIC_OVERLOADED = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
}
ANTHROPIC_CONTEXT = {
    "type": "error",
    "error": {
        "type": "invalid_request_error",
        "message": "prompt is too long: 208656 tokens > 200000 maximum",
    },
}
ANTHROPIC_BILLING = {
    "type": "error",
    "error": {"type": "billing_error", "message": "Your credit balance is too low"},
}
GEMINI_RATE = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "48s"},
        ],
    }
}
GEMINI_PER_DAY = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "53s"},
        ],
    }
}
GEMINI_OVERLOADED = {
    "error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }
}
GEMINI_CONTEXT = {
    "error": {
        "code": 400,
        "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        "status": "INVALID_ARGUMENT",
    }
}


@pytest.mark.parametrize(
    ("status", "body", "kind", "action"),
    [
        (400, OPENAI_CONTEXT, ErrorKind.CONTEXT_LENGTH_EXCEEDED, Action.COMPACT_OR_UPGRADE),
        (429, OPENAI_QUOTA, ErrorKind.QUOTA_EXHAUSTED, Action.FAILOVER),
        (429, OPENAI_RATE, ErrorKind.RATE_LIMITED, Action.RETRY),
        (
            500,
            {"error": {"message": "The server had an error", "type": "server_error"}},
            ErrorKind.SERVER_ERROR,
            Action.RETRY,
        ),
        (
            503,
            {"error": {"message": "overloaded", "type": "server_error"}},
            ErrorKind.OVERLOADED,
            Action.RETRY,
        ),
        (
            401,
            {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}},
            ErrorKind.AUTH,
            Action.FAILOVER,
        ),
        (
            400,
            {"error": {"message": "Invalid 'messages'", "type": "invalid_request_error"}},
            ErrorKind.BAD_REQUEST,
            Action.FAIL,
        ),
        (
            404,
            {"error": {"message": "The model does not exist", "code": "model_not_found"}},
            ErrorKind.BAD_REQUEST,
            Action.FAIL,
        ),
        (409, {"error": {"message": "conflict"}}, ErrorKind.SERVER_ERROR, Action.RETRY),
        (529, ANTHROPIC_OVERLOADED, ErrorKind.OVERLOADED, Action.RETRY),
        (0, ANTHROPIC_OVERLOADED, ErrorKind.OVERLOADED, Action.RETRY),  # SSE error after a 200
        (400, ANTHROPIC_CONTEXT, ErrorKind.CONTEXT_LENGTH_EXCEEDED, Action.COMPACT_OR_UPGRADE),
        (402, ANTHROPIC_BILLING, ErrorKind.QUOTA_EXHAUSTED, Action.FAILOVER),
        (
            403,
            {"type": "error", "error": {"type": "permission_error", "message": "no"}},
            ErrorKind.AUTH,
            Action.FAILOVER,
        ),
        (
            504,
            {"type": "error", "error": {"type": "timeout_error", "message": "timeout"}},
            ErrorKind.TIMEOUT,
            Action.RETRY,
        ),
        (
            413,
            {
                "type": "error",
                "error": {
                    "type": "request_too_large",
                    "message": "Request exceeds the maximum size",
                },
            },
            ErrorKind.BAD_REQUEST,
            Action.FAIL,
        ),
        (429, GEMINI_RATE, ErrorKind.RATE_LIMITED, Action.RETRY),
        (429, GEMINI_PER_DAY, ErrorKind.QUOTA_EXHAUSTED, Action.FAILOVER),
        (503, GEMINI_OVERLOADED, ErrorKind.OVERLOADED, Action.RETRY),
        (400, GEMINI_CONTEXT, ErrorKind.CONTEXT_LENGTH_EXCEEDED, Action.COMPACT_OR_UPGRADE),
        (
            500,
            {"error": {"code": 500, "status": "INTERNAL", "message": "internal"}},
            ErrorKind.SERVER_ERROR,
            Action.RETRY,
        ),
        (
            403,
            {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied"}},
            ErrorKind.AUTH,
            Action.FAILOVER,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "FAILED_PRECONDITION",
                    "message": "Gemini API free tier is not available in your country. Please enable billing",
                }
            },
            ErrorKind.QUOTA_EXHAUSTED,
            Action.FAILOVER,
        ),
    ],
)
def test_recorded_payloads(
    status: int, body: dict[str, object], kind: ErrorKind, action: Action
) -> None:
    c = classify_http(status, {}, body)
    assert c.kind is kind
    assert c.action is action


def test_context_numbers_are_read_from_each_message() -> None:
    assert classify_http(400, {}, OPENAI_CONTEXT).requested_tokens == 130412
    assert classify_http(400, {}, OPENAI_CONTEXT).context_window == 128000
    assert classify_http(400, {}, ANTHROPIC_CONTEXT).context_window == 200000
    assert classify_http(400, {}, GEMINI_CONTEXT).requested_tokens == 1200000
    local = classify_local(ValueError("Requested tokens (9000) exceed context window of 8192"))
    assert local.kind is ErrorKind.CONTEXT_LENGTH_EXCEEDED
    assert local.context_window == 8192


def test_gemini_retry_info_gives_the_delay() -> None:
    assert classify_http(429, {}, GEMINI_RATE).retry_after == 48.0


def test_retry_after_ms_wins_over_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    delay = parse_retry_after({"retry-after": date}, now=now)
    assert delay is not None and 28.0 <= delay <= 31.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_finish_reasons_that_are_failures() -> None:
    for reason in ("content_filter", "refusal", "SAFETY", "RECITATION", "PROHIBITED_CONTENT"):
        c = classify_finish(reason)
        assert c is not None and c.kind is ErrorKind.CONTENT_FILTERED and c.action is Action.FAIL
    malformed = classify_finish("MALFORMED_FUNCTION_CALL")
    assert malformed is not None and malformed.action is Action.REASK
    assert classify_finish("stop") is None
    assert classify_finish("end_turn") is None


def test_only_provider_and_transport_failures_are_classified() -> None:
    from tether.llm.providers.sdk_errors import classify_stainless, provider_error

    assert (
        provider_error(TimeoutError(), classify_stainless).classification.kind is ErrorKind.TIMEOUT
    )
    refused = provider_error(ConnectionRefusedError(), classify_stainless)
    assert refused.classification.kind is ErrorKind.SERVER_ERROR
    # a bug or a warning turned into an error is not a provider failure: never retried
    with pytest.raises(KeyError):
        provider_error(KeyError("oops"), classify_stainless)
    with pytest.raises(DeprecationWarning):
        provider_error(DeprecationWarning("model is deprecated"), classify_stainless)

"""Turning an SDK's exception into a ``Classification``.

The OpenAI and Anthropic SDKs share one generated core (status errors carry ``status_code``,
``response`` and ``body``; transport errors are ``APITimeoutError``/``APIConnectionError``);
google-genai's ``APIError`` carries ``code``, ``status`` and ``details``. The classifier only
ever sees status, headers and body, so these shapes are read by duck typing here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tether.errors import ProviderError
from tether.llm.classify import Classification, classify_http, classify_transport


def _headers(exc: BaseException) -> dict[str, str]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    try:
        return {str(k): str(v) for k, v in dict(headers or {}).items()}
    except (TypeError, ValueError):
        return {}


def _body(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    try:
        text = response.text if response is not None else None
        if text:
            return json.loads(text)
    except Exception:  # a streamed response that was not read, or not JSON
        pass
    return getattr(exc, "body", None)


def classify_stainless(exc: BaseException) -> Classification:
    """An exception from the ``openai`` or ``anthropic`` SDK (or anything else they let out)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        # An SSE ``error`` event after HTTP 200 arrives with the stream's status: 200.
        return classify_http(0 if status < 400 else status, _headers(exc), _body(exc))
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return classify_transport(exc)
    if name == "APIConnectionError" or isinstance(exc, OSError):
        return classify_transport(exc)
    body = getattr(exc, "body", None)
    if body is not None:  # an error object inside a stream (openai raises APIError)
        return classify_http(0, {}, body if "error" in body else {"error": body})
    return classify_transport(exc)


def classify_genai(exc: BaseException) -> Classification:
    """An exception from ``google-genai``."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        details = getattr(exc, "details", None)
        if isinstance(details, dict) and "error" in details:
            body: Any = details
        else:
            err = {
                "code": code,
                "status": getattr(exc, "status", None),
                "message": getattr(exc, "message", ""),
            }
            body = {"error": err}
        return classify_http(code, _headers(exc), body)
    return classify_transport(exc)


_SDK_MODULES = frozenset(
    {
        "openai",
        "anthropic",
        "google",
        "httpx",
        "httpcore",
        "httpx2",
        "httpcore2",
        "aiohttp",
        "anyio",
        "h11",
    }
)


def provider_error(
    exc: Exception, classify: Callable[[BaseException], Classification], partial_text: str = ""
) -> ProviderError:
    """The ``ProviderError`` for an exception raised by an SDK call. Anything that is not a
    failure of the provider or the transport -- a bug, a warning turned into an error --
    is re-raised as it is: it must not be retried or failed over."""
    known = isinstance(exc, (TimeoutError, OSError, json.JSONDecodeError)) or (
        type(exc).__module__.split(".")[0] in _SDK_MODULES
    )
    if isinstance(exc, Warning) or not known:
        raise exc
    return ProviderError(classify(exc), partial_text=partial_text)

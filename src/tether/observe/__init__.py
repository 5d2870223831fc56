"""Observability: OpenTelemetry spans and metrics for runs, steps, attempts and LLM calls,
log correlation, and redaction (see ``docs/observability.md``).

tether never calls ``set_tracer_provider``. The engine asks ``observer_for`` once: it uses
the application's global provider when one is set, else a private SDK provider exporting
over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set, else
nothing — then ``opentelemetry`` is not even imported and the step path pays one
attribute check. ``instrument(harness, tracer_provider=...)`` picks providers explicitly.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from tether.observe.redact import MASK, Redactor, default_redactor, redact

if TYPE_CHECKING:
    from tether.harness import Harness
    from tether.observe.otel import Observer

TRACE_KV_PREFIX = "otel.trace:"  # kv key of a run's trace: "<trace id>-<root span id>-<flags>"
SEMCONV_VERSION = "1.37.0"  # the GenAI semantic conventions emitted (attribute names)

_private: tuple[Any, Any] | None = None


def _global_provider() -> Any:
    """The application's tracer provider, when it set one (without importing otel)."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


def _private_providers() -> tuple[Any, Any]:
    """tether's own SDK providers exporting over OTLP/HTTP, configured by ``OTEL_*``."""
    global _private
    if _private is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            from tether.errors import ConfigurationError

            raise ConfigurationError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry packages are "
                f'missing ({exc.name}): pip install "tether[otel]"'
            ) from None
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tether")})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
        )
        _private = (tracer_provider, meter_provider)
    return _private


def observer_for() -> Observer | None:
    """The engine's observer, or None when tracing is off (the default)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    provider = _global_provider()
    meter_provider = None
    if provider is None:
        if not (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        ):
            return None
        provider, meter_provider = _private_providers()
    from tether.observe.otel import Observer

    return Observer(provider, meter_provider)


def instrument(
    harness: Harness,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool | None = None,
    redactor: Redactor | None = None,
) -> Observer:
    """Trace ``harness`` with explicit providers (tests, or an app that keeps its providers
    out of the globals). ``capture_content`` records LLM messages on spans (default: the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable), redacted."""
    from opentelemetry import trace

    from tether.observe.otel import Observer

    engine = harness.engine
    old = engine.observer
    if old is not None:
        old.close()
    observer = Observer(
        tracer_provider or trace.get_tracer_provider(),
        meter_provider,
        capture_content=capture_content,
        redactor=redactor,
    )
    engine.observer = observer
    return observer


__all__ = [
    "MASK",
    "SEMCONV_VERSION",
    "TRACE_KV_PREFIX",
    "Redactor",
    "default_redactor",
    "instrument",
    "observer_for",
    "redact",
]

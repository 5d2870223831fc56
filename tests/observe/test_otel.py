"""OpenTelemetry: the span tree, GenAI attributes, metrics, log correlation and a trace
that continues across executions of the same run (in-memory exporter)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tether
from tether.observe import SEMCONV_VERSION, instrument
from tether.testing import FakeLLMServer, temporary_harness


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def test_span_tree_with_a_retry_and_an_llm_call(
    telemetry: Telemetry, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.fault("server_error", times=1).reply("it is billing")
    model = f"openai-compatible:{server.url}/v1#tiny"
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("upstream down for jane@example.com")
        return "ok"

    with temporary_harness() as th:

        @th.function()
        async def triage(ctx: tether.Context) -> str:
            ctx.log.info("triaging for %s", "jane@example.com")
            await ctx.step.run("fetch", flaky)
            resp = await ctx.step.llm(
                "classify",
                model=model,
                messages=[{"role": "user", "content": "my card 4111 1111 1111 1111"}],
                max_tokens=20,
            )
            return str(resp.text)

        instrument(
            th,
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            capture_content=True,
        )
        with caplog.at_level(logging.INFO, logger="tether.run"):
            assert th.run(triage) == "it is billing"
        run_id = th.list_runs("triage")[0].id

    spans = telemetry.spans()
    run = _one(spans, "run triage")
    assert run.parent is None
    assert run.attributes is not None
    assert run.attributes["tether.run.id"] == run_id
    assert run.attributes["tether.run.status"] == "completed"
    trace_id = run.context.trace_id
    assert all(s.context.trace_id == trace_id for s in spans)

    fetch = _one(spans, "step fetch")
    assert fetch.parent is not None and fetch.parent.span_id == run.context.span_id
    tries = sorted(
        (s for s in spans if s.name.startswith("attempt") and s.parent == fetch.context),
        key=lambda s: s.start_time or 0,
    )
    assert [s.name for s in tries] == ["attempt 0", "attempt 1"]
    assert tries[0].status.status_code is StatusCode.ERROR
    assert tries[0].attributes is not None and tries[0].attributes["error.type"] == "ValueError"
    assert "jane@example.com" not in (tries[0].status.description or "")
    stack = tries[0].events[0].attributes
    assert stack is not None and "jane@example.com" not in str(stack["exception.stacktrace"])
    assert tries[1].status.status_code is StatusCode.UNSET

    classify = _one(spans, "step classify")
    assert classify.parent is not None and classify.parent.span_id == run.context.span_id
    attempt = _one([s for s in spans if s.parent == classify.context], "attempt 0")
    chats = sorted((s for s in spans if s.name == "chat tiny"), key=lambda s: s.start_time or 0)
    assert len(chats) == 2  # the provider's 500, then the answer
    for chat in chats:
        assert chat.parent is not None and chat.parent.span_id == attempt.context.span_id
        assert chat.kind is SpanKind.CLIENT
    failed, ok = chats
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"]
    attrs = ok.attributes
    assert attrs is not None
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "tiny"
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert isinstance(attrs["gen_ai.usage.input_tokens"], int)
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "4111" not in str(attrs["gen_ai.input.messages"])  # redacted card number
    assert "it is billing" in str(attrs["gen_ai.output.messages"])
    assert not any(k.startswith("gen_ai.system") or "prompt_tokens" in k for k in attrs)
    assert SEMCONV_VERSION == "1.37.0"

    metrics = telemetry.metrics()
    assert sum(p.value for p in metrics["tether.runs.started"]) == 1
    assert sum(p.value for p in metrics["tether.runs.completed"]) == 1
    assert sum(p.value for p in metrics["tether.step.retries"]) == 1
    assert sum(p.value for p in metrics["tether.step.attempts"]) == 3
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"]
    }
    assert tokens["input"] > 0 and tokens["output"] > 0
    durations = metrics["gen_ai.client.operation.duration"]
    assert sum(p.count for p in durations) == 2
    assert any("error.type" in p.attributes for p in durations)

    record = next(r for r in caplog.records if r.name == "tether.run")
    assert record.getMessage() == "triaging for [REDACTED]"
    assert record.trace_id == f"{trace_id:032x}"  # type: ignore[attr-defined]
    assert record.run_id == run_id  # type: ignore[attr-defined]


def test_failed_run_marks_the_run_span(telemetry: Telemetry) -> None:
    with temporary_harness() as th:

        @th.function(retries=tether.Retry(max_attempts=2))
        def boom(ctx: tether.SyncContext) -> None:
            ctx.step.run("explode", _explode)

        instrument(th, tracer_provider=telemetry.tracer_provider)
        with pytest.raises(tether.TetherError):
            th.run(boom)
    spans = telemetry.spans()
    run = _one(spans, "run boom")
    assert run.status.status_code is StatusCode.ERROR
    step = _one(spans, "step explode")
    assert step.status.status_code is StatusCode.ERROR
    assert step.attributes is not None and step.attributes["tether.step.attempts"] == 2


def _explode() -> None:
    raise RuntimeError("api_key=sk-abcdefghijklmnopqrstuvwxyz")


RESUME_APP = """
import os, sys
import tether
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, ConsoleSpanExporter
from tether.observe import instrument

th = tether.Harness(os.environ["APP_STORE"])

@th.function()
def nap(ctx):
    ctx.step.run("before", lambda: 1)
    ctx.step.sleep("nap", 1)
    ctx.step.run("after", lambda: 2)
    return "done"

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
    out=sys.stdout, formatter=lambda s: f"SPAN {s.name} {s.context.trace_id:032x}\\n")))
instrument(th, tracer_provider=provider)
if sys.argv[1] == "start":
    run = th.enqueue(nap, run_id="r1")
    th.engine.drive("r1", th.store.claim_run("r1", th.engine.owner, th.clock.now(), 5), 0.01)
else:
    print("RESULT", th.run(nap, run_id="r1"))
th.close()
"""


def test_a_resumed_run_continues_its_trace_in_another_process(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(RESUME_APP))
    env = {**os.environ, "APP_STORE": f"sqlite:///{tmp_path / 't.db'}"}

    def run(arg: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, str(app), arg], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    first = run("start")
    second = run("resume")
    assert "RESULT done" in second
    firsts = {line.split()[-1] for line in first if line.startswith("SPAN")}
    seconds = {line.split()[-1] for line in second if line.startswith("SPAN")}
    assert len(firsts) == 1 and firsts == seconds
    assert any(line.startswith("SPAN run nap (resumed)") for line in second)
    assert any(line.startswith("SPAN step after") for line in second)


NO_OTEL = """
import sys, importlib.abc

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Hide())
import os
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
import tether
from tether.testing import temporary_harness

with temporary_harness() as th:
    @th.function()
    def f(ctx):
        ctx.log.info("hi")
        return ctx.step.run("a", lambda: 41) + 1
    assert th.run(f) == 42
    assert th.engine.observer is None
assert not any(m.startswith("opentelemetry") for m in sys.modules), sorted(sys.modules)

os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
with temporary_harness() as th:
    @th.function()
    def g(ctx):
        return 1
    try:
        th.run(g)
    except tether.ConfigurationError as exc:
        assert 'pip install "tether[otel]"' in str(exc), exc
        print("OK")
"""


def test_without_the_otel_extra_nothing_is_imported() -> None:
    out = subprocess.run(
        [sys.executable, "-c", NO_OTEL],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK"


class Label(BaseModel):
    name: str


def label() -> Label:
    return Label(name="billing")


def test_typed_step_results_survive_tracing(telemetry: Telemetry) -> None:
    seen: list[object] = []
    with temporary_harness() as th:

        @th.function()
        async def typed(ctx: tether.Context) -> str:
            value = await ctx.step.run("label", label)
            seen.append(value)
            await ctx.step.sleep("nap", 60)  # the body runs again: the value is replayed
            return str(value.name)

        instrument(th, tracer_provider=telemetry.tracer_provider)
        assert th.run(typed) == "billing"
    assert seen == [Label(name="billing"), Label(name="billing")]
    assert len([s for s in telemetry.spans() if s.name.startswith("run typed")]) == 2


OTLP_APP = """
import tether
from tether.testing import temporary_harness

with temporary_harness() as th:
    @th.function()
    def f(ctx):
        return ctx.step.run("a", lambda: 1)
    assert th.run(f) == 1
    assert th.engine.observer is not None
"""


def test_otlp_export_with_only_the_environment_variable() -> None:
    import http.server
    import threading

    received: list[tuple[str, int]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, len(body)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
        out = subprocess.run(
            [sys.executable, "-c", OTLP_APP], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
    finally:
        server.shutdown()
        server.server_close()
    paths = {path for path, size in received if size > 0}
    assert "/v1/traces" in paths  # flushed at exit by the private provider
    assert "/v1/metrics" in paths


GLOBAL_APP = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import tether
from tether.testing import temporary_harness

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)   # the application's, set before tether's first run
tracer = trace.get_tracer("app")

with temporary_harness() as th:
    @th.function()
    def f(ctx):
        return ctx.step.run("a", lambda: 1)
    with tracer.start_as_current_span("request"):
        th.run(f)
names = sorted(s.name for s in exporter.get_finished_spans())
print(names)
assert names == ["attempt 0", "request", "run f", "step a"], names
assert trace.get_tracer_provider() is provider
"""


def test_the_applications_global_provider_gets_the_spans() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", GLOBAL_APP], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr + out.stdout

"""FakeLLMServer: a real HTTP server on 127.0.0.1 that speaks the LLM wire formats.

It answers OpenAI Chat Completions, Responses and embeddings (``/v1/...``), Anthropic
Messages (``/v1/messages``) and Gemini ``generateContent`` / ``streamGenerateContent`` /
``batchEmbedContents`` (``/v1beta/models/...``), streamed (SSE) or not, with scripted
replies and scripted or random faults::

    from tether.testing import FakeLLMServer

    with FakeLLMServer() as server:
        server.fault("rate_limit", retry_after=1)          # the next request gets a 429
        server.fault("overloaded", model="claude-sonnet-4-5", times=3)
        server.reply('{"label": "billing"}')                 # then this reply
        os.environ.update(server.env())                      # point the SDKs at it
        ...
        assert server.request_count() == 2

Entries are consumed in order by the first request they match: ``model=`` restricts one to
a model, ``match=`` to requests whose prompt contains a text (so that concurrent calls can
each get their own schedule); requests that match no entry get ``random_faults`` (if set) or
the default reply. ``script([...])`` takes the same schedule as JSON-shaped dicts -- the form
``tether fake-llm --script FILE.json`` and the admin endpoint ``POST /_tether/script`` read.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from tether.errors import ConfigurationError
from tether.testing.fake_script import parse_script
from tether.testing.fake_wire import (
    FAULT_KINDS,
    Fault,
    Reply,
    default_usage,
    render_error,
    render_reply,
    render_stream,
)

__all__ = ["FAULT_KINDS", "FakeLLMServer", "Fault", "RecordedRequest", "Reply"]

#: The admin endpoints: POST script (a schedule, as ``script()`` takes), POST reset,
#: GET requests (what was received, in order).
ADMIN = "/_tether/"

_GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>[^:]+):(?P<method>\w+)$")


@dataclass
class RecordedRequest:
    """A request the server received."""

    wire: str
    path: str
    model: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]
    outcome: str = ""
    prompt: str = ""  # every text of the request's messages (what ``match=`` looks in)
    received_at: float = 0.0  # time.monotonic() when the request arrived
    finished_at: float = 0.0  # ... and when its reply was written (0.0 if it never was)


@dataclass
class _Entry:
    item: Reply | Fault
    model: str | None
    match: str | None = None

    def matches(self, req: RecordedRequest) -> bool:
        return (self.model is None or self.model == req.model) and (
            self.match is None or self.match in req.prompt
        )


@dataclass
class _RandomFaults:
    rate: float
    kinds: list[Fault]
    rng: random.Random
    model: str | None
    sticky: bool = False


@dataclass
class _State:
    script: list[_Entry] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    random: _RandomFaults | None = None
    limited_until: dict[str, float] = field(default_factory=dict)  # model -> monotonic time
    default: Reply | Callable[[RecordedRequest], Reply] = field(default_factory=Reply)


class _HTTPServer(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs under a burst of connections, and each dropped
    # SYN costs the client a 1 s retransmit.
    request_queue_size = 256
    daemon_threads = True
    block_on_close = False


class FakeLLMServer:
    """An OpenAI-, Anthropic- and Gemini-compatible HTTP server on loopback, for tests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeLLMServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="FakeLLMServer", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes requests that hang
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point the OpenAI, Anthropic and Gemini SDKs (and
        tether's adapters) at this server, with placeholder API keys."""
        return {
            "OPENAI_BASE_URL": f"{self.url}/v1",
            "OPENAI_API_KEY": "sk-fake",
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-ant-fake",
            "GOOGLE_GEMINI_BASE_URL": self.url,
            "GEMINI_API_KEY": "fake-gemini-key",
        }

    # ------------------------------------------------------------ scripting

    def reply(
        self,
        text: str = "Hello from FakeLLMServer.",
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = None,
        delay: float = 0.0,
        model: str | None = None,
        match: str | None = None,
        times: int = 1,
    ) -> FakeLLMServer:
        """Queue a reply (for requests to ``model`` whose prompt contains ``match``, or any)."""
        r = Reply(text, list(tool_calls or []), usage, finish_reason, delay)
        return self._push(r, model, match, times)

    def fault(
        self,
        kind: str,
        *,
        model: str | None = None,
        match: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        retry_after_date: bool = False,
        hang: float = 30.0,
        prompt_tokens: int = 250_000,
        context_window: int = 200_000,
    ) -> FakeLLMServer:
        """Queue ``times`` faults of ``kind`` (see ``FAULT_KINDS``), for requests to ``model``
        whose prompt contains ``match`` (or any)."""
        if kind not in FAULT_KINDS:
            raise ConfigurationError(
                f"unknown fault {kind!r}; choose one of {', '.join(FAULT_KINDS)}"
            )
        f = Fault(
            kind, retry_after, retry_after_ms, retry_after_date, hang, prompt_tokens, context_window
        )
        return self._push(f, model, match, times)

    def script(self, schedule: Any) -> FakeLLMServer:
        """Queue a schedule given as data: a list of entries such as ``{"fault":
        "rate_limit", "retry_after": 2, "model": "gpt-4.1-mini"}`` or ``{"reply": "ok",
        "match": "ticket 7", "times": 2}`` (the arguments of ``fault`` and ``reply``), or an
        object ``{"script": [...], "default": {"reply": ...}, "random_faults": {"rate": 0.3,
        "kinds": [...], "seed": 1}}``. The whole schedule is checked before any of it is
        queued: a bad entry raises ``ConfigurationError`` naming it and changes nothing."""
        parsed = parse_script(schedule)
        with self._lock:
            for item, model, match, times in parsed.entries:
                self._state.script.extend(_Entry(item, model, match) for _ in range(times))
        if parsed.default is not None:
            self.set_default(parsed.default)
        if parsed.random is not None:
            self.random_faults(**parsed.random)
        return self

    def random_faults(
        self,
        rate: float,
        kinds: list[Fault] | list[str],
        *,
        seed: int = 0,
        model: str | None = None,
        sticky_rate_limits: bool = False,
    ) -> FakeLLMServer:
        """Fail a share ``rate`` of unscripted requests with a fault drawn from ``kinds``,
        from a seeded generator (the same seed gives the same schedule).

        With ``sticky_rate_limits``, a drawn ``rate_limit`` with a delay behaves as a real
        rate limit does: the model keeps answering 429 (with the remaining delay) until the
        delay is over, so a client that retries early, or sends other calls meanwhile,
        collects more 429s."""
        faults = [k if isinstance(k, Fault) else Fault(k) for k in kinds]
        with self._lock:
            self._state.random = _RandomFaults(
                rate, faults, random.Random(seed), model, sticky_rate_limits
            )
        return self

    def set_default(self, reply: Reply | Callable[[RecordedRequest], Reply]) -> FakeLLMServer:
        """The reply for requests that match nothing scripted (a ``Reply`` or a function)."""
        with self._lock:
            self._state.default = reply
        return self

    def reset(self) -> None:
        with self._lock:
            self._state = _State()

    def _push(
        self, item: Reply | Fault, model: str | None, match: str | None, times: int
    ) -> FakeLLMServer:
        with self._lock:
            self._state.script.extend(_Entry(item, model, match) for _ in range(times))
        return self

    # ------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def request_count(self, model: str | None = None, wire: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (model is None or r.model == model) and (wire is None or r.wire == wire)
        )

    def pending(self) -> int:
        """Scripted entries not consumed yet."""
        with self._lock:
            return len(self._state.script)

    # ------------------------------------------------------------ request handling

    def _next(self, req: RecordedRequest) -> Reply | Fault:
        with self._lock:
            self._state.requests.append(req)
            for i, entry in enumerate(self._state.script):
                if entry.matches(req):
                    del self._state.script[i]
                    return entry.item
            rnd = self._state.random
            matches = rnd is not None and (rnd.model is None or rnd.model == req.model)
            if rnd is not None and matches:
                now = time.monotonic()
                left = self._state.limited_until.get(req.model, 0.0) - now
                if left > 0:
                    return Fault("rate_limit", retry_after=float(math.ceil(left)))
                if rnd.rng.random() < rnd.rate:
                    fault = rnd.rng.choice(rnd.kinds)
                    if rnd.sticky and fault.kind == "rate_limit" and fault.retry_after:
                        self._state.limited_until[req.model] = now + fault.retry_after
                    return fault
            default = self._state.default
        return default if isinstance(default, Reply) else default(req)


def _wire_of(path: str, body: dict[str, Any]) -> tuple[str, str, bool]:
    """(wire, model, stream) of a request."""
    if path.endswith("/chat/completions"):
        return "chat", str(body.get("model", "")), bool(body.get("stream"))
    if path.endswith("/responses"):
        return "responses", str(body.get("model", "")), bool(body.get("stream"))
    if path.endswith("/embeddings"):
        return "openai-embed", str(body.get("model", "")), False
    if path.endswith("/messages"):
        return "anthropic", str(body.get("model", "")), bool(body.get("stream"))
    m = _GEMINI_PATH.match(path)
    if m:
        method = m.group("method")
        if "mbed" in method:
            return "gemini-embed", m.group("model"), False
        return "gemini", m.group("model"), method == "streamGenerateContent"
    return "unknown", "", False


_PROMPT_FIELDS = ("system", "systemInstruction", "system_instruction", "messages", "input")


def _prompt_text(body: dict[str, Any]) -> str:
    """Every string inside the request's messages, whatever the wire format."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for name in (*_PROMPT_FIELDS, "contents", "prompt"):
        walk(body.get(name))
    return "\n".join(found)


def _prompt_chars(body: dict[str, Any]) -> int:
    return len(json.dumps(body.get("messages") or body.get("input") or body.get("contents") or ""))


def _embed_inputs(wire: str, body: dict[str, Any]) -> list[str]:
    if wire == "openai-embed":
        inp = body.get("input", "")
        return [inp] if isinstance(inp, str) else [str(x) for x in inp]
    reqs = body.get("requests") or [body]
    return [json.dumps(r.get("content", "")) for r in reqs]


def _vector(text: str, dims: int = 8) -> list[float]:
    rng = random.Random(text)
    return [round(rng.uniform(-1, 1), 6) for _ in range(dims)]


def _make_handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's
            # algorithm and the client's delayed ACK add ~40 ms to every reply.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError:  # the client gave up (a timeout): nothing to answer
                self.close_connection = True

        def do_GET(self) -> None:
            if urlparse(self.path).path == ADMIN + "requests":
                self._json(200, {}, [_summary(r) for r in server.requests])
            elif urlparse(self.path).path.endswith("/models"):
                self._json(200, {}, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            else:
                self._json(404, {}, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._json(
                    400,
                    {},
                    {"error": {"message": "body is not JSON", "type": "invalid_request_error"}},
                )
                return
            path = urlparse(self.path).path
            if path.startswith(ADMIN):
                self._admin(path, body)
                return
            wire, model, stream = _wire_of(path, body)
            if wire == "unknown":
                self._json(404, {}, {"error": {"message": f"no route {path}", "type": "not_found"}})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            rec = RecordedRequest(
                wire,
                path,
                model,
                stream,
                body,
                headers,
                prompt=_prompt_text(body),
                received_at=time.monotonic(),
            )
            item = server._next(rec)
            rec.outcome = item.kind if isinstance(item, Fault) else "reply"
            if isinstance(item, Fault):
                self._fault(rec, item)
            else:
                self._reply(rec, item)
            rec.finished_at = time.monotonic()

        def _admin(self, path: str, body: Any) -> None:
            if path == ADMIN + "script":
                try:
                    server.script(body)
                except ConfigurationError as exc:
                    self._json(400, {}, {"error": {"message": str(exc), "type": "bad_script"}})
                    return
                self._json(200, {}, {"pending": server.pending()})
            elif path == ADMIN + "reset":
                server.reset()
                self._json(200, {}, {"pending": 0})
            else:
                self._json(404, {}, {"error": {"message": f"no route {path}", "type": "not_found"}})

        # ---------------------------------------------------- writing

        def _json(
            self, status: int, headers: dict[str, str], body: Any, raw: bytes | None = None
        ) -> None:
            data = raw if raw is not None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, events: list[tuple[str | None, Any]], drop_at_end: bool = False) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for name, data in events:
                    if data is None:
                        break
                    chunk = data if isinstance(data, str) else json.dumps(data)
                    head = f"event: {name}\n" if name else ""
                    self.wfile.write(f"{head}data: {chunk}\n\n".encode())
                    self.wfile.flush()
            except OSError:
                pass

        def _reply(self, rec: RecordedRequest, r: Reply, fail_after: int | None = None) -> None:
            if r.delay and server._stopping.wait(r.delay):
                return
            if rec.wire in ("openai-embed", "gemini-embed"):
                self._embed(rec)
                return
            usage = r.usage or default_usage(r.text, _prompt_chars(rec.body))
            if rec.stream or fail_after is not None:
                self._sse(render_stream(rec.wire, rec.model, r, usage, fail_after))
            else:
                self._json(200, {}, render_reply(rec.wire, rec.model, r, usage))

        def _embed(self, rec: RecordedRequest) -> None:
            inputs = _embed_inputs(rec.wire, rec.body)
            tokens = sum(max(1, len(t) // 4) for t in inputs)
            if rec.wire == "openai-embed":
                data = [
                    {"object": "embedding", "index": i, "embedding": _vector(t)}
                    for i, t in enumerate(inputs)
                ]
                usage = {"prompt_tokens": tokens, "total_tokens": tokens}
                self._json(
                    200, {}, {"object": "list", "data": data, "model": rec.model, "usage": usage}
                )
            else:
                self._json(200, {}, {"embeddings": [{"values": _vector(t)} for t in inputs]})

        def _fault(self, rec: RecordedRequest, f: Fault) -> None:
            kind = f.kind
            if rec.wire in ("openai-embed", "gemini-embed") and kind in (
                "truncated_json",
                "invalid_tool_json",
                "content_filter",
                "mid_stream_overload",
            ):
                kind = "server_error"
            if kind == "hang":
                if server._stopping.wait(f.hang):
                    return
                self._reply(rec, Reply())
            elif kind == "truncated_body":
                full = json.dumps(
                    render_reply(rec.wire, rec.model, Reply(), default_usage("x", 10))
                ).encode()
                self._json(200, {}, None, raw=full[: len(full) // 2])
            elif kind == "truncated_json":
                self._reply(rec, Reply(text='{"label": "billi', finish_reason="stop"))
            elif kind == "invalid_tool_json":
                if rec.wire == "gemini":
                    self._reply(rec, Reply(text="", finish_reason="MALFORMED_FUNCTION_CALL"))
                else:
                    bad = {"name": _first_tool(rec.body), "arguments": '{"city": "Par'}
                    self._reply(rec, Reply(text="", tool_calls=[bad]))
            elif kind == "content_filter":
                reason = {"anthropic": "refusal", "gemini": "SAFETY"}.get(
                    rec.wire, "content_filter"
                )
                self._reply(rec, Reply(text="", finish_reason=reason))
            elif kind == "mid_stream_overload":
                if rec.stream:
                    self._reply(rec, Reply(text="The partial answer is"), fail_after=2)
                else:
                    self._json(*render_error(rec.wire, Fault("overloaded")))
            else:
                self._json(*render_error(rec.wire, Fault(**{**f.__dict__, "kind": kind})))

    return Handler


def _summary(r: RecordedRequest) -> dict[str, Any]:
    return {
        "wire": r.wire,
        "path": r.path,
        "model": r.model,
        "stream": r.stream,
        "outcome": r.outcome,
        "prompt": r.prompt,
    }


def _first_tool(body: dict[str, Any]) -> str:
    tools = body.get("tools") or []
    if tools and isinstance(tools[0], dict):
        t = tools[0]
        return str(t.get("name") or t.get("function", {}).get("name") or "tool")
    return "tool"

"""The demo's "payments API": a tiny real HTTP server on loopback that records refunds.

``POST /refunds`` with ``{"order_id", "amount"}`` and an ``Idempotency-Key`` header records
a charge and answers ``{"charge_id", "order_id", "amount", "replayed"}``; a key seen before
records nothing and answers the first charge again (``"replayed": true``), as Stripe's
idempotency keys do. ``hold(order_id)`` makes the server record the next refund of that
order and then keep its answer back until ``release()`` (a slow API): the demo kills the
worker while the answer is held, and the worker that takes over sends the same request
with the same key.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Charge", "PaymentsServer", "refund"]


@dataclass
class Charge:
    charge_id: str
    order_id: str
    amount: float
    key: str


@dataclass
class _Ledger:
    charges: list[Charge] = field(default_factory=list)
    by_key: dict[str, Charge] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (order_id, key)
    holds: set[str] = field(default_factory=set)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class PaymentsServer:
    """A payments API on 127.0.0.1 that records each refund once per idempotency key."""

    def __init__(self) -> None:
        self._ledger = _Ledger()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.held = threading.Event()  # set once a held request has been recorded
        self._httpd = _HTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,))
        self._thread.daemon = True

    def start(self) -> PaymentsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def hold(self, order_id: str) -> None:
        """Record the next refund of ``order_id``, then hold its answer until ``release``."""
        with self._lock:
            self._ledger.holds.add(order_id)

    def release(self) -> None:
        self._released.set()

    @property
    def charges(self) -> list[Charge]:
        with self._lock:
            return list(self._ledger.charges)

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._ledger.requests)

    def _refund(self, body: dict[str, Any], key: str) -> tuple[dict[str, Any], bool]:
        """Record (or replay) a refund; return the answer and whether to hold it."""
        order_id, amount = str(body["order_id"]), float(body["amount"])
        with self._lock:
            led = self._ledger
            led.requests.append((order_id, key))
            charge = led.by_key.get(key)
            replayed = charge is not None
            if charge is None:
                charge = Charge(f"ch_{len(led.charges) + 1:04d}", order_id, amount, key)
                led.charges.append(charge)
                led.by_key[key] = charge
            held = order_id in led.holds
            led.holds.discard(order_id)
        answer = {
            "charge_id": charge.charge_id,
            "order_id": charge.order_id,
            "amount": charge.amount,
            "replayed": replayed,
        }
        return answer, held


def _handler(server: PaymentsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            key = self.headers.get("Idempotency-Key") or ""
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/refunds" or not key:
                    raise ValueError("POST /refunds with an Idempotency-Key header")
                answer, held = server._refund(body, key)
            except (ValueError, KeyError, TypeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            if held:
                server.held.set()
                server._released.wait(30)
            self._send(200, answer)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client is gone (the demo killed it)
                self.close_connection = True

    return Handler


def refund(url: str, order_id: str, amount: float, idempotency_key: str) -> dict[str, Any]:
    """The client: one refund request; a repeated key gets the first charge back."""
    req = urllib.request.Request(
        f"{url}/refunds",
        data=json.dumps({"order_id": order_id, "amount": amount}).encode(),
        headers={"Idempotency-Key": idempotency_key, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer

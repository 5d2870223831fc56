"""The support agent of ``tether demo`` in one process: a refund above the limit waits for
a human's approval, then the payments API records it exactly once.

The agent is ``tether.demo.agent`` (a think-act-observe loop in plain Python, each tool a
durable step); its model here is FakeLLMServer with the demo's scripted "hosted model", and
the payments API is the demo's loopback server. ``python examples/support_agent.py``;
``tether demo`` runs the whole story (faults, fallback, SIGKILL, cancellation, audit, eval).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import tether
from tether.demo.brain import HostedBrain
from tether.demo.payments import PaymentsServer
from tether.testing import FakeLLMServer


def wait(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    limit = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > limit:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.05)


def main() -> None:
    with FakeLLMServer() as hosted:
        hosted.set_default(HostedBrain())
        pay = PaymentsServer().start()
        model = f"openai-compatible:{hosted.url}/v1#hosted-large"
        os.environ.setdefault("TETHER_STORE", "sqlite:///.tether/support_agent.db")
        os.environ.update(
            TETHER_DEMO_HOSTED=model, TETHER_DEMO_LOCAL=model, TETHER_DEMO_PAYMENTS=pay.url
        )
        from tether.demo.agent import th

        def status(fn: str) -> str:
            runs = th.list_runs(fn, limit=10)
            return runs[0].status.value if runs else "none"

        text = "My standing desk, order C-3003, never arrived. Please refund it."
        message = {
            "conversation_id": "c1",
            "customer": "cy",
            "subject": "customer:cy",  # whose data the reply's run is (th.subject(...))
            "message_id": "c1#1",
            "text": text,
        }
        with th.worker():
            th.send(tether.Event("customer.message", message, id="msg:c1#1"))
            wait(lambda: status("support-reply") == "completed", "the agent's reply")
            wait(lambda: status("refund") == "waiting", "the refund to wait for approval")
            print(f"customer: {text}")
            print(f"agent: {th.list_runs('support-reply')[0].output['reply']}")
            print("refund R-C-3003: waiting for a human's approval")
            th.send(tether.Event("refund.approved", {"refund_id": "R-C-3003", "approved": True}))
            wait(lambda: status("refund") == "completed", "the approved refund")
        pay.stop()
        charges = ", ".join(f"{c.order_id} ${c.amount:.2f}" for c in pay.charges)
        print(f"payments API: {len(pay.charges)} refund recorded: {charges}")
        th.close()


if __name__ == "__main__":
    main()

"""The demo shop's data: orders, the refund policy, and the tools the support agent may call."""

from __future__ import annotations

from typing import Any

from tether.llm import Tool

#: Refunds up to this amount are issued at once; larger ones wait for a human's approval.
APPROVAL_LIMIT = 100.0

ORDERS: dict[str, dict[str, Any]] = {
    "A-1001": {
        "customer": "ada",
        "item": "espresso grinder",
        "total": 129.0,
        "status": "shipped",
        "tracking": "TRK-88213",
        "eta": "Friday",
    },
    "B-2002": {
        "customer": "ben",
        "item": "glass teapot",
        "total": 25.0,
        "status": "delivered",
        "note": "arrived broken",
    },
    "C-3003": {"customer": "cy", "item": "standing desk", "total": 480.0, "status": "lost"},
    "D-4004": {"customer": "dee", "item": "yoga mat", "total": 35.0, "status": "shipped"},
}

POLICY = (
    f"Refunds up to ${APPROVAL_LIMIT:.0f} are issued at once; larger refunds need a human's "
    "approval. Approved refunds reach the card in 3-5 business days. Lost parcels are "
    "refunded in full. Customers can ask us to delete everything we keep about them."
)

POLICY_AGENT_SYSTEM = (
    "You are the policy desk of a web shop. Answer the support agent's question in one "
    "sentence, from this policy only: " + POLICY
)

SYSTEM = (
    "You are the support agent of a web shop. Use the tools to look up orders, issue "
    "refunds, ask the policy desk, and remember or forget what a customer asks. Answer "
    "the customer in two sentences at most."
)


def lookup_order(order_id: str, attempt: int) -> dict[str, Any]:
    """The order database. Its first attempt at A-1001 times out: the step's retry absorbs
    it."""
    if order_id == "A-1001" and attempt == 0:
        raise ConnectionError(f"order database timed out looking up {order_id}")
    order = ORDERS.get(order_id)
    return (
        {"order_id": order_id, "found": False} if order is None else {"order_id": order_id, **order}
    )


def _tool(name: str, description: str, **params: str) -> Tool:
    props = {
        k: {"type": "number" if k == "amount" else "string", "description": v}
        for k, v in params.items()
    }
    return Tool(
        name=name,
        description=description,
        parameters={"type": "object", "properties": props, "required": list(props)},
    )


LOOKUP_ORDER = _tool("lookup_order", "Look up an order by id", order_id="the order id, like A-1001")
ISSUE_REFUND = _tool(
    "issue_refund",
    "Refund an order (over the approval limit a human approves first)",
    order_id="the order id",
    amount="the amount in dollars",
    reason="why",
)
CHECK_POLICY = _tool("check_policy", "Ask the policy desk (a sub-agent)", question="the question")
REMEMBER = _tool(
    "remember", "Keep a fact about the customer for later conversations", fact="the fact"
)
FORGET_ME = _tool("forget_me", "Delete everything kept about the customer")

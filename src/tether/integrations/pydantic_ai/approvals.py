"""Tool approvals that wait durably: a tool declared with ``requires_approval=True`` (or
raising ``ApprovalRequired``) sends ``tether/agent.approval.requested`` and waits, holding no
worker, for the event ``tether/agent.approval`` with ``{"run_id", "tool_call_id",
"approved", "message"?}`` matched by the tether run id and the tool call id."""

from __future__ import annotations

from typing import Any

from pydantic_ai.agent import AbstractAgent
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.tools import ToolDenied
from pydantic_ai.toolsets import FunctionToolset

from tether.durable.context import Context, SyncContext
from tether.records import Event

#: The event that answers an approval request: data ``{"run_id": <tether run id>,
#: "tool_call_id": <id>, "approved": bool, "message": <optional reason for a denial>}``.
APPROVAL_EVENT = "tether/agent.approval"
#: Sent when a tool call waits for approval: data ``{"run_id", "agent", "tool_call_id",
#: "tool_name", "args"}``. Trigger a function on it to notify whoever approves.
APPROVAL_REQUESTED_EVENT = "tether/agent.approval.requested"
#: How far back a wait looks for an answer sent before it was reached.
LOOKBACK = "24h"


def needs_approval(agent: AbstractAgent[Any, Any]) -> bool:
    """Whether any function tool of the agent is declared with ``requires_approval=True``."""
    found = False

    def visit(toolset: Any) -> None:
        nonlocal found
        if isinstance(toolset, FunctionToolset):
            found = found or any(t.requires_approval for t in toolset.tools.values())

    for toolset in agent.toolsets:
        toolset.apply(visit)
    return found


async def wait_for_approval(
    ctx: Context | SyncContext, agent: str, call: ToolCallPart, timeout: float | None
) -> bool | ToolDenied:
    """Ask for approval of ``call`` and wait for the answer, durably."""
    run_id, call_id = ctx.run_id, call.tool_call_id
    request = Event(
        APPROVAL_REQUESTED_EVENT,
        {
            "run_id": run_id,
            "agent": agent,
            "tool_call_id": call_id,
            "tool_name": call.tool_name,
            "args": call.args_as_dict(),
        },
    )
    condition = f"async.data.run_id == {run_id!r} and async.data.tool_call_id == {call_id!r}"
    step = f"{agent}.approval#{call_id}"
    if isinstance(ctx, Context):
        await ctx.step.send_event(f"{step}.request", request)
        answer = await ctx.step.wait_for_event(
            step, event=APPROVAL_EVENT, if_=condition, timeout=timeout, lookback=LOOKBACK
        )
    else:
        ctx.step.send_event(f"{step}.request", request)
        answer = ctx.step.wait_for_event(
            step, event=APPROVAL_EVENT, if_=condition, timeout=timeout, lookback=LOOKBACK
        )
    if answer is None:
        return ToolDenied(f"no approval arrived within {timeout}s")
    if answer.data.get("approved") is True:
        return True
    return ToolDenied(str(answer.data.get("message") or "The tool call was denied."))


__all__ = ["APPROVAL_EVENT", "APPROVAL_REQUESTED_EVENT", "needs_approval", "wait_for_approval"]

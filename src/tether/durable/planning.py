"""From a function's flow-control settings and a trigger event to a ``FlowPlan`` of keys."""

from __future__ import annotations

from tether.codec import dumps
from tether.durable.spec import FunctionSpec
from tether.durations import seconds
from tether.errors import InvalidEventError
from tether.flow.keys import KeyExpr, evaluate_key, match_value
from tether.records import Event
from tether.store.base import FlowPlan


def _key(
    fdef: FunctionSpec, kind: str, key: KeyExpr | None, event: Event, scope: str | None = None
) -> str:
    owner = f"scope={scope}" if scope else fdef.id
    if key is None:
        return f"{kind}:{owner}"
    value = evaluate_key(key, event, function_id=fdef.id, what=kind)
    return f"{kind}:{owner}:{dumps(value)}"


def flow_plan(fdef: FunctionSpec, event: Event) -> FlowPlan | None:
    """Evaluate every key of ``fdef``'s controls on ``event``; a key that cannot be
    evaluated raises ``InvalidEventError`` naming the function and the key."""
    if not fdef.has_flow:
        return None
    plan = FlowPlan()
    # Unscoped limits first and scoped (shared) ones last: the store keeps a scoped key in
    # its second column, so one key is always counted in the same column.
    for c in sorted(fdef.concurrency, key=lambda c: c.scope is not None):
        plan.concurrency.append((_key(fdef, "concurrency", c.key, event, c.scope), c.limit))
    if len(plan.concurrency) == 1 and fdef.concurrency[0].scope is not None:
        plan.concurrency.insert(0, ("", 0))
    plan.hold = any(c.hold for c in fdef.concurrency)
    if fdef.singleton is not None:
        plan.singleton = (_key(fdef, "singleton", fdef.singleton.key, event), fdef.singleton.mode)
    if fdef.throttle is not None:
        t = fdef.throttle
        plan.throttle = (_key(fdef, "throttle", t.key, event), t.limit, t.period_s)
    if fdef.rate_limit is not None:
        r = fdef.rate_limit
        plan.rate = (_key(fdef, "rate_limit", r.key, event), r.limit, r.period_s)
    if fdef.debounce is not None:
        d = fdef.debounce
        plan.debounce = (
            _key(fdef, "debounce", d.key, event),
            seconds(d.period),
            None if d.max_wait is None else seconds(d.max_wait),
        )
    if fdef.batch is not None:
        b = fdef.batch
        plan.batch = (_key(fdef, "batch", b.key, event), b.max_size, seconds(b.timeout))
    if fdef.priority is not None:
        value = evaluate_key(fdef.priority.key, event, function_id=fdef.id, what="priority")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEventError(
                f"function {fdef.id!r}: the priority key {fdef.priority.key!r} gave "
                f"{value!r}, not a number"
            )
        plan.priority = float(value)
    for cancel in fdef.cancel_on:
        value = None if cancel.match is None else dumps(match_value(cancel.match, event))
        timeout = None if cancel.timeout is None else seconds(cancel.timeout)
        plan.cancel_waits.append((cancel.event, cancel.match, value, timeout))
    return plan

"""``acomplete``, ``astream`` and ``aembed``: one logical call, with retries, fallbacks,
circuit breaking, structured output, a deadline and a cost limit."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypedDict, TypeVar, Unpack

from pydantic import BaseModel, ValidationError

from tether.errors import InvalidOutput, ProviderError, StreamInterrupted
from tether.llm.circuit import CircuitBreaker, default_breaker
from tether.llm.classify import Classification, ErrorKind, classify_finish, invalid_output
from tether.llm.policy import Budget, CallState, Policy, Route
from tether.llm.prices import PriceTable, default_prices
from tether.llm.providers import Provider, Request, Result, resolve
from tether.llm.types import (
    AttemptRecord,
    Embedding,
    LLMResponse,
    Message,
    StreamChunk,
    ToolCall,
    Usage,
    to_messages,
    to_tools,
)

M = TypeVar("M", bound=BaseModel)

#: Shortens a conversation that did not fit (context management plugs in here).
Compactor = Callable[[list[Message]], Awaitable[list[Message]]]

DEFAULT_DEADLINE = 120.0
DEFAULT_TIMEOUT = 60.0


class CallOptions(TypedDict, total=False):
    """The reliability options shared by ``acomplete``, ``astream`` and ``aembed``.

    fallbacks     models tried, in order, when the model fails for a reason another may not hit
    deadline      seconds bounding the whole call: attempts, waits, re-asks, fallbacks (120)
    timeout       seconds bounding one attempt (60, never past the deadline)
    max_attempts  attempts per model for retriable failures (3)
    max_cost_usd  stop starting attempts once the call has cost this much
    budget        a ``Budget`` shared across calls (a run's spend limit)
    circuit       a ``CircuitBreaker``; ``False`` for none; default: the process-wide one
    prices        a ``PriceTable``; default: the bundled table with overrides
    on_attempt    called with each ``AttemptRecord`` as it ends (tracing, ledgers)
    """

    fallbacks: Sequence[str | Provider]
    deadline: float
    timeout: float | None
    max_attempts: int
    max_cost_usd: float | None
    budget: Budget | None
    circuit: CircuitBreaker | bool | None
    prices: PriceTable | None
    on_attempt: Callable[[AttemptRecord], None] | None


def _start(model: str | Provider, call: CallOptions, max_reasks: int = 0) -> CallState:
    """Resolve the whole chain before any request (a missing extra or API key fails now)
    and set up the call's state."""
    table = call.get("prices") or default_prices()
    routes: list[Route] = []
    for spec in [model, *call.get("fallbacks", ())]:
        provider = resolve(spec)
        label = spec if isinstance(spec, str) else provider.key
        window = table.context_window(provider.price_provider, provider.model)
        routes.append(Route(label, provider, window))
    circuit = call.get("circuit")
    breaker = (
        None
        if circuit is False
        else circuit
        if isinstance(circuit, CircuitBreaker)
        else default_breaker()
    )
    deadline = call.get("deadline", DEFAULT_DEADLINE)
    timeout = call.get("timeout")
    policy = Policy(
        deadline=deadline,
        timeout=timeout if timeout is not None else min(DEFAULT_TIMEOUT, deadline),
        max_attempts=call.get("max_attempts", 3),
        max_reasks=max_reasks,
        max_cost_usd=call.get("max_cost_usd"),
        budget=call.get("budget"),
        breaker=breaker,
        prices=table,
        on_attempt=call.get("on_attempt"),
    )
    return CallState(routes, policy)


def _request(
    messages: Any,
    tools: Sequence[Any] | None,
    output: type[BaseModel] | None,
    max_tokens: int | None,
    temperature: float | None,
    options: dict[str, Any] | None,
) -> Request:
    if output is not None and not (isinstance(output, type) and issubclass(output, BaseModel)):
        raise TypeError(f"output must be a pydantic model class, got {output!r}")
    return Request(
        messages=to_messages(messages),
        tools=to_tools(tools),
        schema=output.model_json_schema() if output is not None else None,
        schema_name=output.__name__ if output is not None else "output",
        max_tokens=max_tokens,
        temperature=temperature,
        options=dict(options or {}),
    )


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _validate(output: type[M], text: str) -> tuple[M | None, str]:
    """(parsed, "") or (None, a description of what is wrong, for the re-ask)."""
    m = _FENCE.match(text)
    body = m.group(1) if m else text.strip()
    try:
        return output.model_validate_json(body), ""
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False)[:10]:
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            problems.append(f"- {loc}: {err['msg']}")
        return None, "\n".join(problems)


def _reask_messages(result: Result, problem: str, bad_tools: list[str]) -> list[Message]:
    """The assistant's invalid reply and a user turn naming what was wrong with it. Only
    the model's own output is quoted: transport errors never reach a prompt."""
    if bad_tools:
        names = ", ".join(sorted(set(bad_tools)))
        note = (
            f"The arguments of your call to {names} were not a valid JSON object. "
            "Call the tool again with arguments that are a JSON object matching its schema."
        )
        return [Message(role="assistant", content=result.text), Message(role="user", content=note)]
    note = (
        "Your reply did not validate against the required JSON schema:\n"
        f"{problem}\nReply again with only a JSON object that matches the schema."
    )
    return [Message(role="assistant", content=result.text), Message(role="user", content=note)]


async def acomplete(
    model: str | Provider,
    messages: Any,
    *,
    output: type[M] | None = None,
    tools: Sequence[Any] | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    max_reasks: int = 2,
    options: dict[str, Any] | None = None,
    compact: Compactor | None = None,
    prepare: Callable[[str], Awaitable[list[Message]]] | None = None,
    **call: Unpack[CallOptions],
) -> LLMResponse[M]:
    """One logical LLM call: see ``docs/llm.md``.

    ``deadline`` (seconds) bounds every attempt, wait, re-ask and fallback of the call;
    ``timeout`` bounds one attempt (default 60 s, never past the deadline); ``max_attempts``
    is per model; ``max_reasks`` is the separate budget for invalid structured output;
    ``compact``, when given, is called once with the messages when a model reports the
    context too long, and the shorter messages it returns are retried on the same model.
    ``prepare``, when given, makes the messages for each model of the chain (its route's
    ``provider:model``) before its first attempt: a context window builds them to fit that
    model's context window.
    """
    request = _request(messages, tools, output, max_tokens, temperature, options)
    state = _start(model, call, max_reasks)
    prepared: str | None = None
    while True:
        route, permit = await state.next_route()
        if prepare is not None and route.spec != prepared:
            request.messages = to_messages(await prepare(route.spec))
            prepared = route.spec
        started = state.p.clock()
        try:
            result = await route.provider.complete(request, state.attempt_timeout())
        except ProviderError as exc:
            cls = exc.classification
            if cls.kind is ErrorKind.CONTEXT_LENGTH_EXCEEDED and compact is not None:
                state.last = cls
                state.record(route, started, ok=False, cls=cls, action="compact")
                request.messages = to_messages(await compact(list(request.messages)))
                compact = None  # once: a second overflow fails over
                continue
            await state.failed(route, permit, started, cls, exc=exc)
            continue
        await state.success(route, permit)
        problem = classify_finish(result.raw_finish)
        if problem is not None and problem.kind is not ErrorKind.INVALID_OUTPUT:
            await state.failed(route, permit, started, problem, usage=result.usage)
            continue
        parsed: Any = None
        issue: Classification | None = problem
        if issue is None and result.bad_tool_calls:
            issue = invalid_output(
                "tool-call arguments are not valid JSON: " + ", ".join(result.bad_tool_calls)
            )
        elif issue is None and output is not None and not result.tool_calls:
            parsed, why = _validate(output, result.text)
            if parsed is None:
                issue = invalid_output(why)
        if issue is not None:
            state.last = issue
            state.record(route, started, ok=False, usage=result.usage, cls=issue, action="reask")
            if state.reasks >= state.p.max_reasks:
                raise InvalidOutput(
                    f"LLM reply did not validate after {state.reasks} re-ask(s): {issue.message}",
                    text=result.text,
                    errors=issue.message,
                    kind=issue.kind,
                    attempts=state.attempts,
                )
            state.reasks += 1
            request.messages = [
                *request.messages,
                *_reask_messages(result, issue.message, result.bad_tool_calls),
            ]
            continue
        state.record(route, started, ok=True, usage=result.usage)
        return _response(state, route, result, parsed)


def _response(state: CallState, route: Route, result: Result, parsed: Any) -> LLMResponse[Any]:
    total = Usage()
    for a in state.attempts:
        total = total + a.usage
    costs = [a.cost_usd for a in state.attempts]
    return LLMResponse[Any](
        text=result.text,
        parsed=parsed,
        tool_calls=result.tool_calls,
        usage=total,
        cost_usd=None if all(c is None for c in costs) else round(sum(c or 0.0 for c in costs), 10),
        model=route.spec,
        provider=route.provider.provider,
        finish_reason=result.finish_reason,
        attempts=state.attempts,
    )


class LLMStream:
    """An async iterator of ``StreamChunk``; ``response`` is set once the stream is done.

    Failures before the first chunk are retried and failed over like ``acomplete``; a
    failure after it raises ``StreamInterrupted`` with the partial text.
    """

    def __init__(self, gen: Callable[[LLMStream], AsyncIterator[StreamChunk]]) -> None:
        self.response: LLMResponse[Any] | None = None
        self.text = ""
        self._gen = gen

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._gen(self)


def astream(
    model: str | Provider,
    messages: Any,
    *,
    output: type[BaseModel] | None = None,
    tools: Sequence[Any] | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    options: dict[str, Any] | None = None,
    **call: Unpack[CallOptions],
) -> LLMStream:
    """Stream a reply: ``async for chunk in astream(...): print(chunk.text)``."""
    request = _request(messages, tools, output, max_tokens, temperature, options)
    state = _start(model, call)

    async def run(holder: LLMStream) -> AsyncIterator[StreamChunk]:
        state.restart_clock()
        while True:
            route, permit = await state.next_route()
            started = state.p.clock()
            sent: list[str] = []
            calls: list[ToolCall] = []
            result: Result | None = None
            try:
                async for delta in route.provider.stream(request, state.attempt_timeout()):
                    if delta.text:
                        sent.append(delta.text)
                        holder.text = "".join(sent)
                        yield StreamChunk(text=delta.text)
                    elif delta.tool_call is not None:
                        calls.append(delta.tool_call)
                        yield StreamChunk(tool_call=delta.tool_call)
                    elif delta.result is not None:
                        result = delta.result
            except ProviderError as exc:
                cls = exc.classification
                await state.failed(
                    route, permit, started, cls, exc=exc, raise_on_fail=not (sent or calls)
                )
                if sent or calls:
                    raise StreamInterrupted(
                        f"the stream from {route.spec} failed after its first tokens "
                        f"({cls.summary()}); it was not retried: the partial output is in "
                        ".partial_text",
                        partial_text="".join(sent),
                        partial_tool_calls=calls,
                        kind=cls.kind,
                        attempts=state.attempts,
                    ) from exc
                continue
            assert result is not None
            await state.success(route, permit)
            problem = classify_finish(result.raw_finish)
            if problem is not None and problem.kind is not ErrorKind.INVALID_OUTPUT:
                await state.failed(route, permit, started, problem, usage=result.usage)
                if sent:
                    raise state.fail(problem, "the stream ended in an error after its first tokens")
                continue
            parsed: Any = None
            why = ""
            if result.bad_tool_calls:
                why = "tool-call arguments are not valid JSON: " + ", ".join(result.bad_tool_calls)
            elif output is not None and not result.tool_calls:
                parsed, why = _validate(output, result.text)
            if why:
                issue = invalid_output(why)
                state.record(route, started, ok=False, usage=result.usage, cls=issue, action="fail")
                raise InvalidOutput(
                    f"streamed reply is invalid (streams are not re-asked): {why}",
                    text=result.text,
                    errors=why,
                    kind=issue.kind,
                    attempts=state.attempts,
                )
            state.record(route, started, ok=True, usage=result.usage)
            holder.response = _response(state, route, result, parsed)
            return

    return LLMStream(run)


async def aembed(
    model: str | Provider,
    input: str | Sequence[str],
    **call: Unpack[CallOptions],
) -> Embedding:
    """Embed one text or many, with the same retries, fallbacks and deadline as ``acomplete``.
    Fallbacks should produce vectors of the same space (the same model behind another route)."""
    inputs = [input] if isinstance(input, str) else list(input)
    state = _start(model, call)
    while True:
        route, permit = await state.next_route()
        started = state.p.clock()
        try:
            vectors, usage = await route.provider.embed(inputs, state.attempt_timeout())
        except ProviderError as exc:
            await state.failed(route, permit, started, exc.classification, exc=exc)
            continue
        await state.success(route, permit)
        state.record(route, started, ok=True, usage=usage)
        costs = [a.cost_usd for a in state.attempts]
        return Embedding(
            vectors=vectors,
            usage=usage,
            cost_usd=None if all(c is None for c in costs) else sum(c or 0.0 for c in costs),
            model=route.spec,
            provider=route.provider.provider,
            attempts=state.attempts,
        )


__all__ = ["LLMStream", "acomplete", "aembed", "astream"]

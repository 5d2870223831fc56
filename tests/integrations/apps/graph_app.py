"""The app of the LangGraph crash test: a graph of ``STEPS`` nodes in a row, checkpointed by
``TetherSaver`` on the harness's store, invoked inside a tether function. Node ``n`` appends
``<n> <pid>`` to ``begun`` when it starts and ``<n>`` to ``effects`` when done; node
``gate`` blocks until the file ``release`` exists, so a SIGKILL lands inside it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

import tether
from tether.integrations.langgraph import TetherSaver

STEPS = 6


class State(TypedDict):
    folder: str
    gate: int
    done: list[int]


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def node(n: int) -> Any:
    def run(state: State) -> dict[str, Any]:
        folder = state["folder"]
        _append(os.path.join(folder, "begun"), f"{n} {os.getpid()}")
        if n == state["gate"]:
            while not Path(folder, "release").exists():
                time.sleep(0.01)
        _append(os.path.join(folder, "effects"), str(n))
        return {"done": [*state["done"], n]}

    return run


def build(store: str | None = None) -> tether.Harness:
    harness = tether.Harness(store, lease_ttl=1.0, heartbeat=0.25)
    saver = TetherSaver(harness)
    builder = StateGraph(State)
    for n in range(1, STEPS + 1):
        builder.add_node(f"n{n}", node(n))
        builder.add_edge(START if n == 1 else f"n{n - 1}", f"n{n}")
    builder.add_edge(f"n{STEPS}", END)
    graph = builder.compile(checkpointer=saver)

    @harness.function(id="graph")
    def run_graph(ctx: tether.SyncContext) -> list[int]:
        config: Any = {"configurable": {"thread_id": ctx.run_id}}
        # A resumed run continues the thread from its last superstep (input None);
        # durability="sync": each superstep's checkpoint is stored before the next starts.
        started = saver.get_tuple(config) is not None
        inputs = None if started else {**ctx.event.data, "done": []}
        return list(graph.invoke(inputs, config, durability="sync")["done"])

    return harness


th = build()

"""A LangGraph graph checkpointed in tether's store by TetherSaver, run inside a tether
function: `python examples/integrations/langgraph_saver.py`."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

import tether
from tether.integrations.langgraph import TetherSaver


class State(TypedDict):
    text: str


with tether.Harness("sqlite:///.tether/langgraph.db") as th:
    saver = TetherSaver(th)
    builder = StateGraph(State)
    builder.add_node("draft", lambda s: {"text": s["text"] + " -> drafted"})
    builder.add_node("review", lambda s: {"text": s["text"] + " -> reviewed"})
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    graph = builder.compile(checkpointer=saver)

    @th.function()
    def write(ctx: tether.SyncContext) -> str:
        config: Any = {"configurable": {"thread_id": ctx.run_id}}
        started = saver.get_tuple(config) is not None
        state = graph.invoke(None if started else ctx.event.data, config, durability="sync")
        return str(state["text"])

    print(th.run(write, {"text": "idea"}))

"""LangGraph checkpoints on tether's store (``pip install "tether[langgraph]"``)::

    from tether.integrations.langgraph import TetherSaver

    graph = builder.compile(checkpointer=TetherSaver(th))

See ``docs/integrations/langgraph.md``.
"""

from tether.integrations._extra import missing

try:
    import langgraph.checkpoint.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise missing("langgraph", "langgraph", exc) from exc

from tether.integrations.langgraph.saver import TetherSaver

__all__ = ["TetherSaver"]

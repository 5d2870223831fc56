"""Durable pydantic-ai agents (``pip install "tether[pydantic-ai]"``)::

    from tether.integrations.pydantic_ai import TetherAgent

    durable = TetherAgent(agent, harness=th)         # a pydantic-ai WrapperAgent
    result = await durable.run("...")                # model requests and tool calls are steps

See ``docs/integrations/pydantic-ai.md``.
"""

from tether.integrations._extra import missing

try:
    import pydantic_ai  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise missing("pydantic-ai", "pydantic-ai", exc) from exc

from tether.integrations.pydantic_ai.agent import TetherAgent
from tether.integrations.pydantic_ai.approvals import APPROVAL_EVENT, APPROVAL_REQUESTED_EVENT
from tether.integrations.pydantic_ai.durability import TetherDurability
from tether.integrations.pydantic_ai.history import AgentContextWindow
from tether.integrations.pydantic_ai.model import TetherModel

__all__ = [
    "APPROVAL_EVENT",
    "APPROVAL_REQUESTED_EVENT",
    "AgentContextWindow",
    "TetherAgent",
    "TetherDurability",
    "TetherModel",
]

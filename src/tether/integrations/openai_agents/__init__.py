"""The OpenAI Agents SDK, durable (``pip install "tether[openai-agents]"``)::

    from tether.integrations.openai_agents import TetherRunner

    result = await TetherRunner(harness=th).run(agent, "...")   # in place of Runner.run

See ``docs/integrations/openai-agents.md``.
"""

from tether.integrations._extra import missing

try:
    import agents  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise missing("openai-agents", "openai-agents", exc) from exc

from tether.integrations.openai_agents.runner import StepModel, TetherRunner

__all__ = ["StepModel", "TetherRunner"]

"""Durable execution for agents written with other libraries, each an optional extra:

- ``tether.integrations.pydantic_ai``: ``TetherAgent`` (``pip install "tether[pydantic-ai]"``)
- ``tether.integrations.openai_agents``: ``TetherRunner`` (``pip install "tether[openai-agents]"``)
- ``tether.integrations.langgraph``: ``TetherSaver`` (``pip install "tether[langgraph]"``)

Each is built on its library's public interface; see ``docs/integrations/``.
"""

"""Durable functions: definitions, contexts, step execution, replay and the worker."""

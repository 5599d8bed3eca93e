"""The engine that runs the pipeline (see ``agent.engine.core``)."""

from agent.engine.core import Engine

__all__ = ["Engine"]

"""Configuration: typed models and the YAML loader."""

from agent.config.loader import (
    ConfigInvalid,
    ConfigProblem,
    default_config_path,
    load_config,
    parse_config,
    resolve_config_path,
)
from agent.config.models import (
    AgentConfig,
    Destination,
    FilesystemDestination,
    Instrument,
    Settle,
    WatchRule,
)

__all__ = [
    "AgentConfig",
    "ConfigInvalid",
    "ConfigProblem",
    "Destination",
    "FilesystemDestination",
    "Instrument",
    "Settle",
    "WatchRule",
    "default_config_path",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

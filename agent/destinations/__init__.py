"""Destinations: one small interface, one module per transport."""

from agent.config.models import AgentConfig
from agent.destinations.base import Delivered, DestinationTransport, PayloadItem, TransferControl
from agent.destinations.filesystem import FilesystemTransport


def build_transports(config: AgentConfig) -> list[DestinationTransport]:
    """One transport per configured destination."""
    transports: list[DestinationTransport] = []
    for destination in config.destinations:
        transports.append(FilesystemTransport(destination))
    return transports


__all__ = [
    "Delivered",
    "DestinationTransport",
    "FilesystemTransport",
    "PayloadItem",
    "TransferControl",
    "build_transports",
]

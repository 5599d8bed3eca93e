"""Destinations: one small interface, one module per transport."""

from agent.config.models import AgentConfig, FilesystemDestination, S3Destination, TusDestination
from agent.destinations.base import Delivered, DestinationTransport, PayloadItem, TransferControl
from agent.destinations.filesystem import FilesystemTransport


def build_transports(config: AgentConfig) -> list[DestinationTransport]:
    """One transport per configured destination (network clients are imported only when used)."""
    transports: list[DestinationTransport] = []
    for destination in config.destinations:
        if isinstance(destination, FilesystemDestination):
            transports.append(FilesystemTransport(destination))
        elif isinstance(destination, TusDestination):
            from agent.destinations.tus import TusTransport

            transports.append(TusTransport(destination))
        elif isinstance(destination, S3Destination):
            from agent.destinations.s3 import S3Transport

            transports.append(S3Transport(destination))
        else:
            from agent.destinations.sftp import SftpTransport

            transports.append(SftpTransport(destination, config.state_dir))
    return transports


__all__ = [
    "Delivered",
    "DestinationTransport",
    "FilesystemTransport",
    "PayloadItem",
    "TransferControl",
    "build_transports",
]

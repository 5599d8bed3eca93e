"""Extract stage: header-only metadata of each file, normalised across formats."""

from agent.extract.model import FileMetadata
from agent.extract.registry import extract_metadata, extractors

__all__ = ["FileMetadata", "extract_metadata", "extractors"]

"""Standalone OME-XML files (``*.ome.xml``, ``*.companion.ome``)."""

from __future__ import annotations

from pathlib import Path

from agent.extract.model import FileMetadata
from agent.extract.ome import apply_ome

MAX_XML_BYTES = 256 << 20


class OmeXmlExtractor:
    name = "ome-xml"

    def accepts(self, head: bytes, path: Path) -> bool:
        name = path.name.lower()
        return name.endswith((".ome.xml", ".companion.ome", ".ome")) or (
            head.lstrip().startswith(b"<?xml") and b"openmicroscopy.org/Schemas/OME" in head
        )

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        if path.stat().st_size > MAX_XML_BYTES:
            raise ValueError(f"OME-XML larger than {MAX_XML_BYTES >> 20} MiB; not parsed")
        metadata.format = "ome-xml"
        metadata.media_type = "application/xml"
        return apply_ome(metadata, path.read_bytes())

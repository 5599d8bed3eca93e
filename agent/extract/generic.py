"""Fallback extractor: size, modification time and media type, for any file."""

from __future__ import annotations

import mimetypes
import os
from datetime import UTC, datetime
from pathlib import Path

from agent.extract.model import FileMetadata
from agent.package.names import display

mimetypes.add_type("image/tiff", ".tif")
mimetypes.add_type("image/tiff", ".tiff")
mimetypes.add_type("application/dicom", ".dcm")


def generic_metadata(path: Path, stat: os.stat_result | None = None) -> FileMetadata:
    """What any file has; raises OSError only if the file cannot be stat'ed (*stat*: already known)."""
    stat = stat if stat is not None else path.stat()
    media_type, _ = mimetypes.guess_type(path.name, strict=False)
    return FileMetadata(
        file_name=display(path.name),
        size_bytes=stat.st_size,
        modified_at=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
        media_type=media_type or "application/octet-stream",
    )

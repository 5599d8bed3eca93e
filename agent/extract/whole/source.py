"""Reading a file's structure by position, and the three verdicts a check can give.

Checks read headers, directories and offset tables with positioned reads, never the
pixel data: their cost follows the number of planes or blocks a file declares, not its
size. A read that runs past the end returns fewer bytes; the checks turn that into
"truncated" with what was declared and what was found.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.extract.model import FileCompleteness


class Source:
    """A file opened for positioned reads (``os.pread`` where there is one: no shared offset)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("rb")
        self.size = os.fstat(self._handle.fileno()).st_size

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._handle.close()

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        if hasattr(os, "pread"):
            return os.pread(self._handle.fileno(), length, offset)
        self._handle.seek(offset)  # Windows: one thread owns this handle
        return self._handle.read(length)

    def unpack_at(self, offset: int, fmt: str) -> tuple[Any, ...] | None:
        """*fmt* unpacked at *offset*, or None when the file ends first."""
        width = struct.calcsize(fmt)
        raw = self.read_at(offset, width)
        return struct.unpack(fmt, raw) if len(raw) == width else None


def whole(
    detail: str | None = None,
    *,
    declared: int | None = None,
    found: int | None = None,
    unit: str | None = None,
    extent: int | None = None,
) -> FileCompleteness:
    return FileCompleteness(
        state="whole", detail=detail, declared=declared, found=declared if found is None else found, unit=unit,
        extent_bytes=extent,
    )  # fmt: skip


def truncated(
    detail: str, *, declared: int | None = None, found: int | None = None, unit: str | None = None
) -> FileCompleteness:
    return FileCompleteness(state="truncated", detail=detail, declared=declared, found=found, unit=unit)


def unknown(detail: str | None = None) -> FileCompleteness:
    return FileCompleteness(state="unknown", detail=detail)


def ends_early(what: str, declared_end: int, size: int) -> FileCompleteness:
    """The file stops before the end of something it declares."""
    missing = declared_end - size
    return truncated(
        f"{what} ends {missing} byte{'s' if missing != 1 else ''} early",
        declared=declared_end,
        found=size,
        unit="bytes",
    )


def bytes_check(what: str, declared_end: int, size: int) -> FileCompleteness:
    if declared_end > size:
        return ends_early(what, declared_end, size)
    return whole(declared=declared_end, found=size, unit="bytes", extent=declared_end)

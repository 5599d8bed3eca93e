"""Where a file holds data: its holes are found with ``SEEK_DATA``/``SEEK_HOLE``.

A sparse file (a pre-allocated acquisition that was never filled, a disk image) reads
as zeros in its holes. Copying only the data ranges keeps the archive copy as sparse as
the source, and costs no reads for the holes. Where the platform or filesystem does not
tell (Windows, some network filesystems), the whole file counts as data.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator


def data_ranges(descriptor: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``(first, stop)`` byte ranges of ``[start, end)`` that may hold data; the gaps are holes."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        if start < end:
            yield start, end
        return
    position = start
    while position < end:
        try:
            first = os.lseek(descriptor, position, seek_data)
        except OSError as error:
            if error.errno == errno.ENXIO:  # nothing but a hole up to the end of the file
                return
            yield position, end  # the filesystem cannot tell: all data
            return
        if first >= end:
            return
        try:
            stop = min(os.lseek(descriptor, first, seek_hole), end)
        except OSError:
            stop = end
        yield first, stop
        position = stop

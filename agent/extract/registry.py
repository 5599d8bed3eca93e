"""Choose an extractor for a file by content sniffing and suffix; never crash, never hang.

Third parties add formats through the ``harvest.extractors`` entry-point group: each
entry point names an object (or a class to instantiate) with ``name``,
``accepts(head, path)`` and ``extract(path, metadata)``, and optionally
``refuses(head)``: why a file it accepted by name is not its format (None: it is), so
that no parser runs on it. Installed extractors are tried before the built-in ones.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from agent.extract.bundles import membership
from agent.extract.generic import generic_metadata
from agent.extract.model import FileCompleteness, FileMetadata
from agent.extract.whole import check_file
from agent.package.names import display

logger = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "harvest.extractors"
HEAD_BYTES = 512


class Extractor(Protocol):
    name: str

    def accepts(self, head: bytes, path: Path) -> bool: ...

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata: ...


@functools.cache
def extractors() -> tuple[Extractor, ...]:
    # The built-in readers are imported here, on first use: a run that extracts nothing
    # (a reconcile of an archive already harvested) never loads them.
    from agent.extract.czi import CziExtractor
    from agent.extract.dicom import DicomExtractor
    from agent.extract.dm import DmExtractor
    from agent.extract.emd import EmdExtractor
    from agent.extract.epu import EpuExtractor
    from agent.extract.lif import LifExtractor
    from agent.extract.mdoc import MdocExtractor
    from agent.extract.mrc import MrcExtractor
    from agent.extract.nd2 import Nd2Extractor
    from agent.extract.nifti import NiftiExtractor
    from agent.extract.omexml import OmeXmlExtractor
    from agent.extract.paravision import ParaVisionExtractor
    from agent.extract.sif import SifExtractor
    from agent.extract.tia import TiaExtractor
    from agent.extract.tiff import TiffExtractor
    from agent.extract.vsi import VsiExtractor
    from agent.extract.zarr import OmeZarrExtractor

    found: list[Extractor] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            found.append(loaded() if isinstance(loaded, type) else loaded)
        except Exception as error:  # noqa: BLE001 - a broken plug-in must not stop the agent
            logger.warning("extractor plug-in %s could not be loaded: %s", entry_point.name, error)
    # Magic-number readers first; suffix-led ones (MRC, NIfTI) and TIFF, whose magic VSI shares, last.
    found += [
        DicomExtractor(), CziExtractor(), LifExtractor(), Nd2Extractor(), SifExtractor(), DmExtractor(),
        TiaExtractor(), EmdExtractor(), ParaVisionExtractor(), OmeZarrExtractor(), OmeXmlExtractor(),
        EpuExtractor(), MdocExtractor(), NiftiExtractor(), MrcExtractor(), VsiExtractor(), TiffExtractor(),
    ]  # fmt: skip
    return tuple(found)


# A quoted literal in an error message (b'...', '...', "..."), or an unclosed one to the end:
# parsers quote the bytes they choked on, and those may be a patient's name.
_QUOTED = re.compile(r"""b?'(?:[^'\\]|\\.)*'|b?"(?:[^"\\]|\\.)*"|b?['"].*""")


def _describe(error: BaseException) -> str:
    """One line about *error* for a warning or a log, with every quoted value cut out."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return display(_QUOTED.sub("<value not shown>", text)[:200])


def extract_metadata(path: Path) -> FileMetadata:
    """Normalised metadata for *path*; a malformed file gets generic metadata and a warning.

    Raises ``OSError`` only when the file cannot be read at all.
    """
    # Opened without blocking and checked: a file swapped for a named pipe must not hang us.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        opened = os.fstat(descriptor)
        metadata = generic_metadata(path, opened)
        unit = membership(path)
        if unit is not None:
            metadata.unit = unit.info(path)
        if not stat.S_ISREG(opened.st_mode):
            metadata.warnings.append("not a regular file: metadata not read")
            return metadata
        head = os.read(descriptor, HEAD_BYTES)
    finally:
        os.close(descriptor)
    if unit is None or unit.role == "anchor" or unit.read_member:
        metadata = _extracted(path, head, metadata)
    # else a chunk of a store, a scan's raw data: the unit's anchor describes it
    return with_completeness(path, metadata, head)


def _extracted(path: Path, head: bytes, metadata: FileMetadata) -> FileMetadata:
    for extractor in extractors():
        if not extractor.accepts(head, path):
            continue
        # Optional: an extractor that accepts a name may refuse the bytes before its parser runs.
        refuses: Callable[[bytes], str | None] | None = getattr(extractor, "refuses", None)
        reason = refuses(head) if refuses is not None else None
        if reason is not None:
            metadata.warnings.append(f"{extractor.name}: unreadable metadata: {reason}")
            return metadata
        try:
            return extractor.extract(path, metadata.model_copy(deep=True))
        except Exception as error:  # noqa: BLE001 - parsers raise anything on corrupt input
            metadata.warnings.append(f"{extractor.name}: unreadable metadata: {_describe(error)}")
            return metadata
    return metadata


def with_completeness(path: Path, metadata: FileMetadata, head: bytes) -> FileMetadata:
    """The file's structural completeness (``agent.extract.whole``); a truncated file says so."""
    try:
        metadata.completeness = check_file(path, head)
    except Exception as error:  # noqa: BLE001 - a check that fails must cost this file its verdict only
        logger.warning("%s: structure check failed: %s", display(str(path)), _describe(error))
        metadata.completeness = FileCompleteness(state="unknown", detail="structure check failed")
    verdict = metadata.completeness
    if verdict.state == "truncated":
        metadata.warnings.append(f"truncated: {verdict.detail}")
    if verdict.unit == "IFDs" and verdict.found is not None:
        # A TIFF's planes: counted by the check's walk of the IFD chain (tifffile would build a
        # page object per IFD: 7.6 s for 10,000 IFDs, against about 22 ms for the walk).
        if metadata.plane_count is None:
            metadata.plane_count = verdict.found
        if metadata.format == "eer" and metadata.electron is not None and metadata.electron.frames is None:
            metadata.electron.frames = verdict.found
    return metadata

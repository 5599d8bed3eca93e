"""Is a file whole? Everything its headers declare must be inside it (docs/architecture.md).

``check_file`` picks a check by the file's magic number and name, never by the extracted
metadata (a truncated file may not even be recognised by its extractor), and answers
``whole``, ``truncated`` (with what was declared and what was found) or ``unknown`` (the
format declares nothing to check, or the structure is unreadable for another reason than
a cut). Checks read headers and offset tables only: never pixel data.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from pathlib import Path

from agent.extract.model import FileCompleteness
from agent.extract.whole.containers import CZI_MAGIC, HDF5_MAGIC, ND2_MAGIC, check_czi, check_hdf5, check_lif, check_nd2
from agent.extract.whole.dicom import check_dicom
from agent.extract.whole.electron import check_dm, check_mrc, check_ser
from agent.extract.whole.simple import (
    check_2dseq,
    check_ets,
    check_jcamp,
    check_jpeg,
    check_json,
    check_nifti,
    check_nifti_image,
    check_png,
    check_sif,
    check_xml,
    is_jcamp,
)  # fmt: skip
from agent.extract.whole.source import Source, unknown
from agent.extract.whole.tiff import check_tiff

logger = logging.getLogger(__name__)
Check = Callable[[Source], FileCompleteness]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_SUFFIX_CHECKS: dict[str, Check] = {
    ".dcm": check_dicom, ".dicom": check_dicom, ".czi": check_czi, ".nd2": check_nd2, ".lif": check_lif,
    ".h5": check_hdf5, ".hdf5": check_hdf5, ".emd": check_hdf5, ".ims": check_hdf5, ".nxs": check_hdf5,
    ".mrc": check_mrc, ".mrcs": check_mrc, ".map": check_mrc, ".st": check_mrc, ".ali": check_mrc,
    ".rec": check_mrc, ".dm3": check_dm, ".dm4": check_dm, ".ser": check_ser, ".nii": check_nifti,
    ".hdr": check_nifti, ".img": check_nifti_image, ".sif": check_sif, ".ets": check_ets, ".jpg": check_jpeg,
    ".jpeg": check_jpeg, ".png": check_png, ".xml": check_xml, ".ome": check_xml, ".json": check_json,
".tif": lambda s: check_tiff(s, s.path.name),
    ".tiff": lambda s: check_tiff(s, s.path.name), ".btf": lambda s: check_tiff(s, s.path.name),
    ".eer": lambda s: check_tiff(s, s.path.name), ".svs": lambda s: check_tiff(s, s.path.name),
    ".ndpi": lambda s: check_tiff(s, s.path.name), ".lsm": lambda s: check_tiff(s, s.path.name),
}  # fmt: skip


_TIFFS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_MAGICS: dict[str, tuple[bytes, ...]] = {
    **dict.fromkeys((".tif", ".tiff", ".btf", ".eer", ".svs", ".ndpi", ".lsm"), _TIFFS),
    ".czi": (b"ZISRAWFILE",), ".nd2": (b"\xda\xce\xbe\x0a", b"\x00\x00\x00\x0cjP  "),
    ".lif": (b"\x70\x00\x00\x00",), **dict.fromkeys((".h5", ".hdf5", ".emd", ".ims", ".nxs"), (b"\x89HDF\r\n\x1a\n",)),
    ".dm3": (b"\x00\x00\x00\x03",), ".dm4": (b"\x00\x00\x00\x04",), ".ser": (b"II\x97\x01",),
    ".sif": (b"Andor Technology",), ".ets": (b"SIS\x00",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",),
    ".png": (b"\x89PNG\r\n\x1a\n",),
}  # fmt: skip
_MAGIC_BYTES = 16


def _by_content(head: bytes, path: Path) -> Check | None:
    name = path.name.lower()
    if head[128:132] == b"DICM":
        return check_dicom
    if head[:4] in _TIFF_MAGIC:
        return None if name.endswith(".vsi") else (lambda source: check_tiff(source, path.name))
    if head.startswith(CZI_MAGIC):
        return check_czi
    if head.startswith(ND2_MAGIC):
        return check_nd2
    if head.startswith(HDF5_MAGIC):
        return check_hdf5
    if head[:4] == b"\x70\x00\x00\x00" and head[8:9] == b"\x2a":
        return check_lif
    if head.startswith(b"II\x97\x01"):
        return check_ser
    if head.startswith(b"Andor Technology Multi-Channel File"):
        return check_sif
    if head.startswith(b"SIS\x00") and (head[64:68] == b"ETS\x00" or len(head) < 68):
        return check_ets
    if head[208:212] == b"MAP ":
        return check_mrc
    if head[:4] in (b"\x00\x00\x00\x03", b"\x00\x00\x00\x04") and path.suffix.lower() in (".dm3", ".dm4"):
        return check_dm
    if head.startswith(b"\xff\xd8\xff"):
        return check_jpeg
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return check_png
    if name == "2dseq":
        return check_2dseq
    if is_jcamp(head, path):
        return check_jcamp
    if name in ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata"):
        return check_json
    return None


def check_for(path: Path, head: bytes) -> Check | None:
    """The check for this file, or None when its format declares nothing to check.

    A name claims a format; for formats with a magic number, a file long enough to show it
    but without it is not that format (nothing to check), while a shorter one that begins
    like it (or is empty) is a cut header."""
    by_content = _by_content(head, path)
    if by_content is not None:
        return by_content
    name = path.name.lower()
    magics = _MAGICS.get(path.suffix.lower())
    if magics is not None and (len(head) >= _MAGIC_BYTES or not any(magic.startswith(head) for magic in magics)):
        return None  # not this format after all (a short file is a cut header only if it begins like one)
    if name.endswith((".ome.xml", ".companion.ome")):
        return check_xml
    if name.endswith(".nii.gz"):
        return None  # the size is declared inside the compressed stream only
    return _SUFFIX_CHECKS.get(path.suffix.lower()) if path.suffix else None


def check_file(path: Path, head: bytes | None = None) -> FileCompleteness:
    """Whole, truncated or unknown; raises ``OSError`` only when the file cannot be read.

    *head*: the file's first 512 bytes (or all of a shorter file), where the caller has
    read them already; a file whose format declares nothing to check is then not opened.
    """
    if head is not None and check_for(path, head[:512]) is None:
        return unknown()
    with Source(path) as source:
        head = source.read_at(0, 512)
        check = check_for(path, head)
        if check is None:
            return unknown()
        try:
            return check(source)
        except (
            ValueError,
            IndexError,
            KeyError,
            TypeError,
            OverflowError,
            MemoryError,
            EOFError,
            struct.error,
        ) as error:
            logger.debug("%s: structure check gave up: %s", path, error)
            return unknown("structure unreadable")


__all__ = ["check_file", "check_for"]

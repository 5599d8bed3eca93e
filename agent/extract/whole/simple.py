"""Formats that declare their extent in a fixed header or end with a closing mark.

NIfTI (.nii, and an .img with its .hdr), Andor SIF, Olympus ETS tiles, JPEG (end-of-image
marker), PNG (IEND chunk), XML and JSON documents (a cut document does not close),
ParaVision JCAMP-DX parameter files (``##END=``) and ``2dseq`` (its ``visu_pars`` gives
the frame size and count).
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

from lxml import etree

from agent.extract.model import FileCompleteness
from agent.extract.sif import read_sif_header
from agent.extract.whole.source import Source, bytes_check, truncated, unknown, whole

MAX_DOCUMENT_BYTES = 64 << 20
_NIFTI_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8, 1536: 16,
                1792: 16, 2048: 32, 2304: 4}  # fmt: skip
_VISU_WORD_BYTES = {"_8BIT_UNSGN_INT": 1, "_8BIT_SGN_INT": 1, "_16BIT_SGN_INT": 2, "_32BIT_SGN_INT": 4,
                    "_32BIT_FLOAT": 4}  # fmt: skip


def check_nifti(source: Source) -> FileCompleteness:
    if source.size < 348:
        return truncated("NIfTI header incomplete", declared=348, found=source.size, unit="bytes")
    declared = _nifti_data_end(source.read_at(0, 540), pair=source.path.suffix.lower() == ".img")
    if declared is None:
        return unknown()
    if source.path.suffix.lower() == ".hdr":
        return bytes_check("NIfTI header", 348, source.size)
    return bytes_check("NIfTI voxel data", declared, source.size)


def check_nifti_image(source: Source) -> FileCompleteness:
    """An Analyze/NIfTI pair's .img: its size comes from the .hdr beside it."""
    header = source.path.with_suffix(".hdr")
    if not header.is_file():
        return unknown("no .hdr beside this .img")
    with Source(header) as header_source:
        declared = _nifti_data_end(header_source.read_at(0, 540), pair=True)
    return unknown() if declared is None else bytes_check("NIfTI voxel data", declared, source.size)


def _nifti_data_end(head: bytes, *, pair: bool) -> int | None:
    for order in ("<", ">"):
        if len(head) >= 348 and struct.unpack_from(order + "i", head)[0] == 348:
            dims = struct.unpack_from(order + "8h", head, 40)
            bitpix = struct.unpack_from(order + "h", head, 72)[0]
            offset = 0 if pair else int(struct.unpack_from(order + "f", head, 108)[0])
            return _voxels_end(dims, bitpix, offset)
        if len(head) >= 540 and struct.unpack_from(order + "i", head)[0] == 540:
            bitpix = struct.unpack_from(order + "h", head, 14)[0]
            dims = struct.unpack_from(order + "8q", head, 16)
            offset = 0 if pair else int(struct.unpack_from(order + "q", head, 168)[0])
            return _voxels_end(dims, bitpix, offset)
    return None


def _voxels_end(dims: tuple[int, ...], bitpix: int, offset: int) -> int | None:
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or offset < 0:
        return None
    voxels = math.prod(max(1, value) for value in dims[1 : dims[0] + 1])
    return offset + (voxels * bitpix + 7) // 8


def check_sif(source: Source) -> FileCompleteness:
    try:
        info = read_sif_header(source.path)
    except EOFError:
        return truncated("SIF header ends early", unit="bytes")
    tiles = info.get("tile") or []
    ends = [tile[2] + (tile[1][2] - tile[1][0]) * (tile[1][3] - tile[1][1]) * 4 for tile in tiles]
    if not ends:
        return unknown()
    return bytes_check("SIF frame data", max(ends), source.size)


def check_ets(source: Source) -> FileCompleteness:
    head = source.read_at(0, 104)
    if len(head) < 104:
        return truncated("ETS header incomplete", declared=104, found=source.size, unit="bytes")
    dimensions = struct.unpack_from("<I", head, 12)[0]
    table, tiles = struct.unpack_from("<QI", head, 32)
    entry = 4 + 4 * dimensions + 16
    if not 2 <= dimensions <= 16 or tiles > 50_000_000:
        return unknown("ETS header unreadable")
    raw = source.read_at(table, tiles * entry)
    if len(raw) < tiles * entry:
        return bytes_check("ETS tile table", table + tiles * entry, source.size)
    farthest = 0
    for index in range(tiles):
        offset, nbytes = struct.unpack_from("<QI", raw, index * entry + 4 + 4 * dimensions)
        farthest = max(farthest, offset + nbytes)
    return bytes_check("ETS tile data", farthest, source.size)


def check_jpeg(source: Source) -> FileCompleteness:
    tail = source.read_at(max(0, source.size - 64), 64).rstrip(b"\x00")
    if tail.endswith(b"\xff\xd9"):
        return whole()
    return truncated("JPEG ends without its end-of-image marker")


def check_png(source: Source) -> FileCompleteness:
    if source.read_at(source.size - 12, 12) == b"\x00\x00\x00\x00IEND\xaeB`\x82":
        return whole()
    return truncated("PNG ends without its IEND chunk")


def check_xml(source: Source) -> FileCompleteness:
    """Fed whole, a cut document parses without error until the parser is told it has
    ended: only then does an element stay open. A malformed one fails while it is fed."""
    if source.size > MAX_DOCUMENT_BYTES:
        return unknown("XML document too large to check")
    parser = etree.XMLPullParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        parser.feed(source.read_at(0, source.size))
    except etree.XMLSyntaxError:
        return unknown("XML not well-formed")
    try:
        parser.close()
    except etree.XMLSyntaxError:
        return truncated("XML document ends before its elements close")
    return whole()


def check_json(source: Source) -> FileCompleteness:
    if source.size > MAX_DOCUMENT_BYTES:
        return unknown("JSON document too large to check")
    text = source.read_at(0, source.size).decode("utf-8", "replace")
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string"):
            return truncated("JSON document ends before it closes")
        return unknown("JSON not well-formed")
    return whole()


def check_jcamp(source: Source) -> FileCompleteness:
    tail = source.read_at(max(0, source.size - 256), 256)
    if b"##END=" in tail:
        return whole()
    return truncated("JCAMP-DX parameter file ends without ##END=")


def check_2dseq(source: Source) -> FileCompleteness:
    visu_pars = source.path.with_name("visu_pars")
    if not visu_pars.is_file():
        return unknown("no visu_pars beside this 2dseq")
    text = visu_pars.read_text(encoding="latin-1", errors="replace")[: 4 << 20]
    size = re.search(r"##\$VisuCoreSize=\(\s*\d+\s*\)\s*([\d\s]+)", text)
    frames = re.search(r"##\$VisuCoreFrameCount=\s*(\d+)", text)
    word = re.search(r"##\$VisuCoreWordType=\s*(\w+)", text)
    if size is None or frames is None or word is None or word.group(1) not in _VISU_WORD_BYTES:
        return unknown("visu_pars does not declare the frame size")
    frame = math.prod(int(value) for value in size.group(1).split())
    return bytes_check("2dseq frames", frame * int(frames.group(1)) * _VISU_WORD_BYTES[word.group(1)], source.size)


def is_jcamp(head: bytes, path: Path) -> bool:
    return head.startswith(b"##TITLE") or (
        head.startswith(b"##") and path.name in ("acqp", "method", "visu_pars", "reco")
    )

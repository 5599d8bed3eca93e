"""TIFF family (plain, BigTIFF, OME-TIFF, ImageJ, Micro-Manager, SVS, NDPI, EER...): is it whole?

The IFD chain (and each IFD's SubIFD chains) must end inside the file, every tag value
stored out of line must fit, and every strip and tile (offset + byte count) must end
inside the file. Then what the file says about its planes: an OME-TIFF's TiffData for
this file name the IFDs it must have, ImageJ's ``images=`` the planes (in IFDs, or
contiguous after the first one for ImageJ's files over 4 GiB), and a Micro-Manager file's
index map (written when the file is closed) each image's IFD.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from agent.extract.model import FileCompleteness
from agent.extract.whole.source import Source, ends_early, truncated, unknown, whole

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_INTEGER = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}
_DATA = {273: 279, 324: 325}  # StripOffsets -> StripByteCounts, TileOffsets -> TileByteCounts
_IMAGE_DESCRIPTION, _SUBIFDS = 270, 330
_WANTED = {*_DATA, *_DATA.values(), _SUBIFDS, _IMAGE_DESCRIPTION}
_DATA_TAGS = [*_DATA, *_DATA.values()]
_SIZES = [_TYPE_SIZES.get(kind, 0) for kind in range(19)] + [0]  # bytes per value, by TIFF type
_LAYOUTS = {
    (order, big): struct.Struct(order + ("HHQ8s" if big else "HHI4s")) for order in "<>" for big in (False, True)
}
MAX_IFDS = 1_000_000
IFD_READ_BYTES = 512
BULK_IFDS = 4096
MAX_ENTRIES = 4096
MAX_DESCRIPTION_BYTES = 64 << 20
_MM_INDEX_HEADER, _MM_INDEX_MAP = 54773648, 3453623
_MM_BLOCK_HEADERS = (483765892, 99384722)  # display settings, comments: offset headers
_MM_DISPLAY, _MM_COMMENTS = 347834724, 84720485
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True)


class _Corrupt(Exception):
    """The structure is not readable as TIFF (not a truncation: a malformed file)."""


@dataclass
class _Walk:
    order: str
    big: bool
    ifds: int = 0
    data_end: int = 0  # the end of the farthest strip, tile or out-of-line value
    beyond: str | None = None  # what lies past the end of the file, if anything
    description: bytes | None = None
    first_data: tuple[int, int] | None = None  # first IFD: first strip offset, bytes per plane
    seen: set[int] = field(default_factory=set)


def check_tiff(source: Source, file_name: str) -> FileCompleteness:
    head = source.read_at(0, 16)
    if len(head) < 8:
        return truncated("TIFF header incomplete", declared=8, found=len(head), unit="bytes")
    order = "<" if head[:2] == b"II" else ">"
    version = struct.unpack(order + "H", head[2:4])[0]
    if version == 43:
        if len(head) < 16:
            return truncated("BigTIFF header incomplete", declared=16, found=len(head), unit="bytes")
        walk, first = _Walk(order, True), struct.unpack(order + "Q", head[8:16])[0]
    else:
        walk, first = _Walk(order, False), struct.unpack(order + "I", head[4:8])[0]
    try:
        chain_end = _chain(source, walk, first, top=True)
    except _Corrupt as error:
        return unknown(f"TIFF structure unreadable: {error}")
    if chain_end is not None:
        return truncated(
            f"IFD chain leaves the file after {walk.ifds} IFDs", declared=walk.ifds + 1, found=walk.ifds, unit="IFDs"
        )
    if walk.beyond is not None:
        return ends_early(walk.beyond, walk.data_end, source.size)
    return _declared_planes(source, walk, file_name)


def _chain(source: Source, walk: _Walk, offset: int, *, top: bool) -> int | None:
    """Walk one IFD chain; returns the offset of an IFD beyond the end of the file, if any.

    The first IFD is read entry by entry (its description and first strip matter); the
    others are gathered and checked in bulk (``_bulk``), which keeps the walk of a file with
    thousands of planes within a few microseconds per IFD."""
    pending: list[bytes] = []
    try:
        while offset:
            if offset in walk.seen:
                return None  # a loop: readers stop here, and so do we
            walk.seen.add(offset)
            if len(walk.seen) > MAX_IFDS:
                raise _Corrupt("too many IFDs")
            entry_size, count_size, pointer = (20, 8, "Q") if walk.big else (12, 2, "I")
            block = source.read_at(offset, IFD_READ_BYTES)  # most IFDs fit: one read for count, entries, link
            if len(block) < count_size:
                return offset
            entries = int(struct.unpack_from(walk.order + ("Q" if walk.big else "H"), block)[0])
            if entries > MAX_ENTRIES:
                raise _Corrupt(f"an IFD with {entries} entries")
            needed = entries * entry_size + (8 if walk.big else 4)
            raw = block[count_size : count_size + needed]
            if len(raw) < needed and len(block) == IFD_READ_BYTES:
                raw = source.read_at(offset + count_size, needed)
            if len(raw) < needed:
                return offset
            _past(walk, "an IFD", offset + count_size + len(raw), source.size)
            if top:
                walk.ifds += 1
            if top and walk.ifds == 1:
                _sub_chains(source, walk, _entries(source, walk, raw, entries, entry_size, first=True))
            else:
                pending.append(raw[: entries * entry_size])
                if len(pending) >= BULK_IFDS:
                    _sub_chains(source, walk, _bulk(source, walk, pending))
                    pending = []
            offset = struct.unpack_from(walk.order + pointer, raw, entries * entry_size)[0]
        return None
    finally:
        if pending:
            _sub_chains(source, walk, _bulk(source, walk, pending))


def _sub_chains(source: Source, walk: _Walk, offsets: list[int]) -> None:
    for sub in offsets:
        beyond = _chain(source, walk, sub, top=False)
        if beyond is not None:
            _past(walk, "a SubIFD", beyond + 2)


def _bulk(source: Source, walk: _Walk, raws: list[bytes]) -> list[int]:
    """Check many IFDs' entries at once: every out-of-line value and every single strip or
    tile must end inside the file. IFDs with several strips or tiles, or with SubIFDs, go
    entry by entry (``_entries``). Returns the SubIFD offsets found."""
    import numpy  # on first use: a run without TIFFs never imports numpy

    integer = walk.order + ("u8" if walk.big else "u4")
    layout = numpy.dtype([("tag", walk.order + "u2"), ("kind", walk.order + "u2"), ("count", integer),
                          ("value", integer)])  # fmt: skip
    table = numpy.frombuffer(b"".join(raws), dtype=layout)
    owner = numpy.repeat(numpy.arange(len(raws)), [len(raw) // layout.itemsize for raw in raws])
    tags, kinds = table["tag"], table["kind"]
    counts = table["count"].astype(numpy.uint64)
    sizes = numpy.array(_SIZES, dtype=numpy.uint64)
    nbytes = sizes[numpy.minimum(kinds, len(_SIZES) - 1)] * counts
    inline = 8 if walk.big else 4
    outside = nbytes > inline
    if outside.any():
        ends = table["value"][outside].astype(numpy.uint64) + nbytes[outside]
        farthest = int(ends.argmax())
        _past(walk, f"tag {int(tags[outside][farthest])}'s values", int(ends[farthest]), source.size)
    data = numpy.isin(tags, _DATA_TAGS)
    one_by_one = numpy.unique(owner[(data & (counts != 1)) | (tags == _SUBIFDS)])
    sub_ifds: list[int] = []
    for index in one_by_one.tolist():
        raw = raws[index]
        sub_ifds += _entries(source, walk, raw, len(raw) // layout.itemsize, layout.itemsize, first=False)
    simple = ~numpy.isin(owner, one_by_one) & data & (counts == 1)
    values = _inline_values(table["value"], kinds, walk)
    for offsets_tag, counts_tag in _DATA.items():
        starts = simple & (tags == offsets_tag)
        lengths = simple & (tags == counts_tag)
        both, at_start, at_length = numpy.intersect1d(owner[starts], owner[lengths], return_indices=True)
        if both.size:
            ends = values[starts][at_start] + values[lengths][at_length]
            ends = ends[(values[starts][at_start] > 0) & (values[lengths][at_length] > 0)]
            if ends.size:
                _past(walk, "image data", int(ends.max()), source.size)
    return sub_ifds


def _inline_values(stored: Any, kinds: Any, walk: _Walk) -> Any:
    """A SHORT or LONG stored in the value field of its entry, as a number."""
    import numpy  # on first use, see _bulk

    field_bits = 64 if walk.big else 32
    values = stored.astype(numpy.uint64)
    for kind, bits in ((3, 16), (4, 32), (13, 32)):
        if bits >= field_bits:
            continue
        chosen = kinds == kind
        if walk.order == "<":
            values[chosen] &= numpy.uint64((1 << bits) - 1)
        else:
            values[chosen] >>= numpy.uint64(field_bits - bits)
    return values


def _entries(source: Source, walk: _Walk, raw: bytes, count: int, entry_size: int, *, first: bool) -> list[int]:
    """One IFD's entries: out-of-line values must fit; strips, tiles and SubIFDs are read."""
    inline = 8 if walk.big else 4
    layout = _LAYOUTS[(walk.order, walk.big)]
    where_format = walk.order + ("Q" if walk.big else "I")
    values: dict[int, list[int]] = {}
    farthest, farthest_tag = 0, 0
    for tag, kind, number, stored in layout.iter_unpack(raw[: count * entry_size]):
        width = _TYPE_SIZES.get(kind)
        if width is None:
            continue  # an unknown type: readers skip the entry
        nbytes = width * number
        if nbytes <= inline:
            if tag not in _WANTED:
                continue
            value_bytes = stored[:nbytes]
        else:
            where = struct.unpack(where_format, stored)[0]
            if where + nbytes > farthest:
                farthest, farthest_tag = where + nbytes, tag
            if tag not in _WANTED or (tag == _IMAGE_DESCRIPTION and not (first and nbytes <= MAX_DESCRIPTION_BYTES)):
                continue
            value_bytes = source.read_at(where, nbytes)
        if tag == _IMAGE_DESCRIPTION:
            if first and walk.description is None:
                walk.description = value_bytes
        elif kind in _INTEGER and len(value_bytes) == nbytes:
            values[tag] = list(struct.unpack(f"{walk.order}{number}{_INTEGER[kind]}", value_bytes))
    if farthest:
        _past(walk, f"tag {farthest_tag}'s values", farthest, source.size)
    for offsets_tag, counts_tag in _DATA.items():
        offsets, counts = values.get(offsets_tag), values.get(counts_tag)
        if not offsets or not counts:
            continue
        ends = [start + length for start, length in zip(offsets, counts, strict=False) if start and length]
        if ends:
            _past(walk, "image data", max(ends), source.size)
        if first and walk.first_data is None and offsets[0]:
            walk.first_data = (offsets[0], sum(counts))
    return values.get(_SUBIFDS, [])


def _past(walk: _Walk, what: str, end: int, size: int | None = None) -> None:
    if end > walk.data_end:
        walk.data_end = end
        if size is None or end > size:
            walk.beyond = what


def _declared_planes(source: Source, walk: _Walk, file_name: str) -> FileCompleteness:
    description = walk.description or b""
    required = _mm_index(source, walk)
    if required is not None:
        return required
    if b"<OME" in description[:4096] or description.lstrip().startswith(b"<?xml"):
        needed = _ome_ifds(description, file_name)
        if needed:
            return _ifds_verdict(walk.ifds, needed, "planes its OME-XML declares", walk.data_end)
    if description.startswith(b"ImageJ="):
        match = re.search(rb"\nimages=(\d+)", description)
        images = int(match.group(1)) if match else 0
        if images > 1 and walk.ifds == 1 and walk.first_data is not None:
            start, plane = walk.first_data  # ImageJ over 4 GiB: one IFD, planes contiguous
            end = start + images * plane
            if end > source.size:
                return ends_early("image stack", end, source.size)
            return whole(declared=images, unit="planes", extent=max(end, walk.data_end))
        if images > 1:
            return _ifds_verdict(walk.ifds, images, "planes ImageJ declares", walk.data_end)
    return whole(declared=walk.ifds, unit="IFDs", extent=walk.data_end)


def _ifds_verdict(found: int, needed: int, what: str, extent: int) -> FileCompleteness:
    if found < needed:
        return truncated(f"{found} of {needed} {what}", declared=needed, found=found, unit="IFDs")
    return whole(declared=needed, found=found, unit="IFDs", extent=extent)


def _mm_index(source: Source, walk: _Walk) -> FileCompleteness | None:
    """Micro-Manager: the index map, written when the file is closed, lists every image's
    IFD; display settings and comments blocks follow it, each with its length."""
    header = source.unpack_at(8, "<IIIIII")
    if header is None or header[0] != _MM_INDEX_HEADER:
        return None
    offset = header[1]
    if offset == 0 or offset >= source.size:
        return truncated("Micro-Manager index map missing (file not closed by its writer)", unit="images")
    head = source.unpack_at(offset, "<II")
    if head is None or head[0] != _MM_INDEX_MAP:
        return truncated("Micro-Manager index map incomplete", unit="images")
    count = head[1]
    raw = source.read_at(offset + 8, count * 20)
    if len(raw) < count * 20:
        return truncated("Micro-Manager index map incomplete", declared=count, found=len(raw) // 20, unit="images")
    extent = max(walk.data_end, offset + 8 + count * 20)
    for block_header, block_at, magic in ((header[2], header[3], _MM_DISPLAY), (header[4], header[5], _MM_COMMENTS)):
        if block_header not in _MM_BLOCK_HEADERS or not block_at:
            continue
        block = source.unpack_at(block_at, "<II")
        if block is None or block[0] != magic:
            return ends_early("Micro-Manager display settings or comments", block_at + 8, source.size)
        extent = max(extent, block_at + 8 + block[1])
    if extent > source.size:
        return ends_early("Micro-Manager display settings or comments", extent, source.size)
    pointers = struct.unpack_from(f"<{count * 5}I", raw)[4::5]
    missing = sum(1 for pointer in pointers if pointer >= source.size)
    if missing:
        return truncated(f"{count - missing} of {count} images", declared=count, found=count - missing, unit="images")
    return _ifds_verdict(walk.ifds, count, "images its index map lists", extent)


def _ome_ifds(description: bytes, file_name: str) -> int:
    """How many IFDs this file needs: the highest IFD + PlaneCount its TiffData name for it."""
    try:
        root = etree.fromstring(description.rstrip(b"\x00"), parser=_PARSER)
        return _needed(root, file_name)
    except (etree.XMLSyntaxError, ValueError):
        return 0  # an unreadable OME-XML declares nothing here (the extractor reports it)


def _needed(root: etree._Element, file_name: str) -> int:
    needed = 0
    for pixels in root.iter("{*}Pixels"):
        planes = 1
        for name in ("SizeZ", "SizeC", "SizeT"):
            planes *= int(pixels.get(name) or 1)
        samples = [int(channel.get("SamplesPerPixel") or 1) for channel in pixels.iter("{*}Channel")]
        if samples and all(count > 1 for count in samples):
            planes = max(1, planes // samples[0])  # interleaved RGB: one IFD holds the channels
        for tiff_data in pixels.iter("{*}TiffData"):
            uuid = tiff_data.find("{*}UUID")
            if uuid is not None and uuid.get("FileName") not in (None, file_name):
                continue
            ifd = int(tiff_data.get("IFD") or 0)
            count = tiff_data.get("PlaneCount")
            default = 1 if tiff_data.get("IFD") is not None else planes
            needed = max(needed, ifd + (default if count is None else int(count)))
    return needed

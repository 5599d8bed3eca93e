"""Container formats with a directory: CZI, ND2, LIF and HDF5 (Velox EMD, Imaris, NeXus...).

- CZI: the file header points at the subblock directory; every directory entry (in this
  file part) must point at a subblock segment that ends inside the file, and the metadata
  and attachment segments must fit.
- ND2 (version 2 and 3): the chunk map is written last, with a signature in the file's
  final 40 bytes; every chunk it lists must end inside the file.
- LIF: after the XML header, memory blocks follow one another; each must end inside the
  file, and there must be as many as the XML declares (``Memory`` elements of non-zero size).
- HDF5: the superblock's end-of-file address must not lie beyond the file's end; a
  version 2/3 superblock still marked "open for writing" means its writer never closed it.
"""

from __future__ import annotations

import re
import struct

from agent.extract.model import FileCompleteness
from agent.extract.whole.source import Source, bytes_check, ends_early, truncated, unknown, whole

CZI_MAGIC = b"ZISRAWFILE"
ND2_MAGIC = b"\xda\xce\xbe\x0a"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SEGMENT = struct.Struct("<16sqq")  # id, allocated size, used size
_ND2_MAP_SIGNATURE = b"ND2 CHUNK MAP SIGNATURE 0000001!"
_ND2_CHUNK = struct.Struct("<IIQ")
MAX_ENTRIES = 5_000_000
_MEMORY = re.compile(r"<Memory\b[^>]*?\bSize=\"(\d+)\"")


def _segment_end(source: Source, position: int, what: str) -> FileCompleteness | int:
    header = source.unpack_at(position, "<16sqq")
    if header is None:
        return ends_early(what, position + _SEGMENT.size, source.size)
    return position + _SEGMENT.size + max(int(header[1]), int(header[2]))


def check_czi(source: Source) -> FileCompleteness:
    header = source.unpack_at(_SEGMENT.size, "<iiii16s16siqqiq")
    if header is None:
        return truncated("CZI file header incomplete", declared=_SEGMENT.size + 80, found=source.size, unit="bytes")
    part, directory, metadata, attachments = header[6], header[7], header[8], header[10]
    if directory <= 0:
        return truncated("CZI subblock directory missing (file not finished by its writer)", unit="subblocks")
    farthest = 0
    for position, what in ((metadata, "CZI metadata segment"), (attachments, "CZI attachment directory")):
        if position > 0:
            end = _segment_end(source, position, what)
            if not isinstance(end, int):
                return end
            farthest = max(farthest, end)
    if attachments > 0:
        end = _attachments_end(source, attachments)
        if not isinstance(end, int):
            return end
        farthest = max(farthest, end)
    count = source.unpack_at(directory + _SEGMENT.size, "<i")
    if count is None:
        return ends_early("CZI subblock directory", directory + _SEGMENT.size + 128, source.size)
    entries, offset = count[0], directory + _SEGMENT.size + 128
    if not 0 <= entries <= MAX_ENTRIES:
        return unknown("CZI subblock directory unreadable")
    positions: list[int] = []
    for index in range(entries):
        entry = source.unpack_at(offset, "<2siqiiBB4si")
        if entry is None or entry[0] != b"DV":
            found = index if entry is None else None
            return truncated(f"CZI subblock directory ends after {index} of {entries} entries", declared=entries,
                             found=found, unit="subblocks")  # fmt: skip
        if entry[3] == part:
            positions.append(entry[2])
        offset += 32 + 20 * max(0, entry[8])
    present = sum(1 for position in positions if position + _SEGMENT.size <= source.size)
    if present < len(positions):
        return truncated(f"{present} of {len(positions)} subblocks", declared=len(positions), found=present,
                         unit="subblocks")  # fmt: skip
    farthest = max(farthest, offset)  # the directory's own end
    for position in sorted(positions)[-1:]:
        end = _segment_end(source, position, "the last subblock")
        if not isinstance(end, int):
            return end
        farthest = max(farthest, end)
    if farthest > source.size:
        return ends_early("a CZI segment", farthest, source.size)
    return whole(declared=len(positions), unit="subblocks", extent=farthest)


def _attachments_end(source: Source, directory: int) -> FileCompleteness | int:
    """The end of the farthest attachment (a thumbnail, a time stamp table) the directory lists."""
    count = source.unpack_at(directory + _SEGMENT.size, "<i")
    if count is None or not 0 <= count[0] <= MAX_ENTRIES:
        return 0
    raw = source.read_at(directory + _SEGMENT.size + 256, 128 * count[0])
    if len(raw) < 128 * count[0]:
        return ends_early("CZI attachment directory", directory + _SEGMENT.size + 256 + 128 * count[0], source.size)
    positions = [struct.unpack_from("<q", raw, 128 * index + 12)[0] for index in range(count[0])]
    if not positions:
        return 0
    return _segment_end(source, max(positions), "the last CZI attachment")


def check_nd2(source: Source) -> FileCompleteness:
    if source.read_at(4, 4) == b"jP  ":
        return unknown("legacy JPEG 2000 ND2: no chunk map to check")
    tail = source.unpack_at(source.size - 40, "<32sQ") if source.size >= 40 else None
    if tail is None or tail[0] != _ND2_MAP_SIGNATURE:
        return truncated("ND2 chunk map missing (file not closed by its writer)", unit="chunks")
    location = tail[1]
    head = source.unpack_at(location, "<IIQ")
    if head is None or head[0] != 0x0ABECEDA:
        return truncated("ND2 chunk map unreadable where the file says it is", unit="chunks")
    data = source.read_at(location + _ND2_CHUNK.size + head[1], head[2])
    chunks: list[tuple[int, int]] = []
    position = 0
    while len(chunks) < MAX_ENTRIES:
        end = data.find(b"!", position) + 1
        if end <= 0 or data[position:end] == _ND2_MAP_SIGNATURE or end + 16 > len(data):
            break
        chunks.append(struct.unpack_from("<QQ", data, end))
        position = end + 16
    present = 0
    farthest = 0
    for offset, _size in chunks:
        chunk = source.unpack_at(offset, "<IIQ")
        if chunk is None:
            continue
        present += 1
        farthest = max(farthest, offset + _ND2_CHUNK.size + chunk[1] + chunk[2])
    if present < len(chunks):
        return truncated(f"{present} of {len(chunks)} chunks", declared=len(chunks), found=present, unit="chunks")
    if farthest > source.size:
        return ends_early("an ND2 chunk", farthest, source.size)
    return whole(declared=len(chunks), unit="chunks", extent=source.size)


def check_lif(source: Source) -> FileCompleteness:
    head = source.unpack_at(0, "<IIBI")
    if head is None:
        return truncated("LIF header incomplete", declared=13, found=source.size, unit="bytes")
    xml_end = 13 + 2 * head[3]
    raw = source.read_at(13, 2 * head[3])
    if len(raw) < 2 * head[3]:
        return ends_early("LIF XML header", xml_end, source.size)
    xml = raw.decode("utf-16-le", "replace")
    version = re.search(r"<LMSDataContainer\w*Header[^>]*\bVersion=\"(\d+)\"", xml)
    wide = version is None or int(version.group(1)) >= 2
    declared = sum(1 for match in _MEMORY.finditer(xml) if int(match.group(1)) > 0)
    layout = "<IIBQBI" if wide else "<IIBIBI"
    offset, blocks = xml_end, 0
    while offset < source.size:
        block = source.unpack_at(offset, layout)
        if block is None:
            return ends_early(f"LIF memory block {blocks + 1}", offset + struct.calcsize(layout), source.size)
        if block[0] != 0x70 or block[2] != 0x2A or block[4] != 0x2A:
            return unknown("LIF memory block header unreadable")
        data_at = offset + struct.calcsize(layout) + 2 * block[5]
        if data_at + block[3] > source.size:
            return ends_early(f"LIF memory block {blocks + 1}", data_at + block[3], source.size)
        offset = data_at + block[3]
        blocks += 1 if block[3] > 0 else 0
    if blocks < declared:
        return truncated(f"{blocks} of {declared} memory blocks", declared=declared, found=blocks, unit="memory blocks")
    return whole(declared=declared, unit="memory blocks", extent=offset)


def check_hdf5(source: Source) -> FileCompleteness:
    base = next((at for at in (0, 512, 1024, 2048, 4096, 8192) if source.read_at(at, 8) == HDF5_MAGIC), None)
    if base is None:
        return unknown("no HDF5 superblock found")
    version = source.read_at(base + 8, 1)
    if not version:
        return truncated("HDF5 superblock incomplete", unit="bytes")
    if version[0] in (0, 1):
        sizes = source.unpack_at(base + 13, "<BB")
        if sizes is None:
            return truncated("HDF5 superblock incomplete", unit="bytes")
        width = sizes[0]
        addresses = base + 24 + (4 if version[0] == 1 else 0)
        eof_at, flags = addresses + 2 * width, 0
    elif version[0] in (2, 3):
        sizes = source.unpack_at(base + 9, "<BBB")
        if sizes is None:
            return truncated("HDF5 superblock incomplete", unit="bytes")
        width, flags = sizes[0], sizes[2]
        eof_at = base + 12 + 2 * width
    else:
        return unknown(f"HDF5 superblock version {version[0]}")
    if width not in (2, 4, 8):
        return unknown("HDF5 superblock unreadable")
    raw = source.read_at(eof_at, width)
    if len(raw) < width:
        return truncated("HDF5 superblock incomplete", unit="bytes")
    eof = int.from_bytes(raw, "little")
    if eof == (1 << (8 * width)) - 1:
        return unknown("HDF5 end-of-file address undefined")
    if version[0] == 3 and flags & 0x1:
        return truncated("HDF5 file still marked open for writing (its writer never closed it)", unit="bytes")
    return bytes_check("HDF5 data", base + eof, source.size)

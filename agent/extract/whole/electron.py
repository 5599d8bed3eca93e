"""Electron-microscopy formats: MRC (and its IMOD/CCP-EM variants), DM3/DM4, TIA SER.

- MRC: 1024-byte header + extended header (NSYMBT) + NX x NY x NZ voxels of MODE.
- DM3/DM4: the header states the tag tree's length; the file is header + tree + 8 zero bytes.
- SER: the offset table lists every valid element; the element farthest in, with its
  dimensions and data type, and every element's tag, must end inside the file.
"""

from __future__ import annotations

import struct

from agent.extract.model import FileCompleteness
from agent.extract.whole.source import Source, bytes_check, ends_early, truncated, unknown

_MRC_MODE_BYTES = {0: 1.0, 1: 2.0, 2: 4.0, 3: 4.0, 4: 8.0, 6: 2.0, 12: 2.0, 101: 0.5}
_SER_TYPE_BYTES = {1: 1, 2: 2, 3: 4, 4: 1, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 16}
_SER_2D, _SER_1D = 0x4122, 0x4120
_SER_TAG_BYTES = {0x4152: 6, 0x4142: 22}
MAX_ELEMENTS = 10_000_000


def check_mrc(source: Source) -> FileCompleteness:
    if source.size < 1024:
        return truncated("MRC header incomplete", declared=1024, found=source.size, unit="bytes")
    for order in ("<", ">"):
        header = source.unpack_at(0, order + "4i")
        extended = source.unpack_at(92, order + "i")
        if header is None or extended is None:
            return unknown()
        nx, ny, nz, mode = header
        if mode in _MRC_MODE_BYTES and min(nx, ny, nz) >= 0 and extended[0] >= 0:
            data = int(((nx + 1) // 2 if mode == 101 else nx * _MRC_MODE_BYTES[mode]) * ny * nz)
            return bytes_check("MRC voxel data", 1024 + extended[0] + data, source.size)
    return unknown("MRC header declares no known mode")


def check_dm(source: Source) -> FileCompleteness:
    version = source.unpack_at(0, ">I")
    if version is None or version[0] not in (3, 4):
        return truncated("DM header incomplete", declared=16, found=source.size, unit="bytes")
    length = source.unpack_at(4, ">Q" if version[0] == 4 else ">I")
    if length is None:
        return truncated("DM header incomplete", declared=16, found=source.size, unit="bytes")
    header = 16 if version[0] == 4 else 12
    return bytes_check("DM tag tree", header + length[0] + 8, source.size)


def check_ser(source: Source) -> FileCompleteness:
    head = source.read_at(0, 30)
    if len(head) < 30:
        return truncated("SER header incomplete", declared=30, found=len(head), unit="bytes")
    version, data_type, tag_type, total, valid = struct.unpack("<HIIII", head[4:22])
    wide = version >= 0x0220
    width = 8 if wide else 4
    table = struct.unpack("<Q" if wide else "<I", head[22 : 22 + width])[0]
    if not 0 <= valid <= total <= MAX_ELEMENTS:
        return unknown("SER header declares an implausible element count")
    raw = source.read_at(table, 2 * total * width)
    if len(raw) < 2 * total * width:
        return ends_early("SER offset table", table + 2 * total * width, source.size)
    offsets = struct.unpack(f"<{2 * total}{'Q' if wide else 'I'}", raw)
    data, tags = offsets[:valid], offsets[total : total + valid]
    present = sum(1 for offset in data if 0 < offset < source.size)
    if present < valid:
        return truncated(f"{present} of {valid} elements", declared=valid, found=present, unit="elements")
    farthest = max((offset + _SER_TAG_BYTES.get(tag_type, 0) for offset in tags if offset), default=0)
    if data:
        last = max(data)
        if data_type == _SER_2D:
            element = source.unpack_at(last, "<ddiddiHII")
            if element is None:
                return ends_early("the last SER element", last + 50, source.size)
            farthest = max(farthest, last + 50 + element[7] * element[8] * _SER_TYPE_BYTES.get(element[6], 0))
        elif data_type == _SER_1D:
            element = source.unpack_at(last, "<ddiHI")
            if element is None:
                return ends_early("the last SER element", last + 26, source.size)
            farthest = max(farthest, last + 26 + element[4] * _SER_TYPE_BYTES.get(element[3], 0))
    return bytes_check("SER data", farthest, source.size)

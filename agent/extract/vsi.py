"""Olympus / Evident cellSens VSI with its ``_<name>_/stackN/*.ets`` pixel files: one image.

The VSI is a TIFF wrapper (thumbnail plus the ``OlympusSIS`` tag, read with tifffile);
the pixels live in ETS files whose header (an "SIS" block, then an "ETS" block with pixel
type, channels per pixel, compression and tile size, then a table of used tiles with
their coordinates) is documented by Bio-Formats' cellSens reader and read here. Tile
coordinates give the Z and channel counts without reading a tile. Not read: the VSI's
binary property tree (so no physical pixel size or channel names yet), and the TIFF
``Artist`` tag (a user name).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from agent.extract.model import Dimensions, FileMetadata, InstrumentInfo
from agent.extract.values import integer, text

SIS_MAGIC = b"SIS\x00"
MAX_TILES = 1_000_000
_PIXEL_TYPES = {1: "int8", 2: "uint8", 3: "int16", 4: "uint16", 5: "int32", 6: "uint32", 7: "int64", 8: "uint64",
                9: "float32", 10: "float64"}  # fmt: skip
_COMPRESSION = {0: "raw", 2: "JPEG", 3: "JPEG 2000", 5: "JPEG lossless", 8: "PNG", 9: "BMP"}


def ets_folder(vsi: Path) -> Path:
    return vsi.with_name(f"_{vsi.stem}_")


def _stack_index(path: Path) -> tuple[int, str]:
    found = re.search(r"(\d+)$", path.parent.name)
    return (int(found.group(1)) if found else 0, str(path))


class VsiExtractor:
    name = "vsi"

    def accepts(self, head: bytes, path: Path) -> bool:
        return path.suffix.lower() == ".vsi" or (path.suffix.lower() == ".ets" and head.startswith(SIS_MAGIC))

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        metadata.format = "vsi"
        metadata.media_type = "application/x-olympus-vsi"
        metadata.instrument = InstrumentInfo(manufacturer="Evident (Olympus)")
        metadata.software = "cellSens"
        if path.suffix.lower() == ".ets":
            apply_ets(metadata, path)
            return metadata
        import tifffile

        with tifffile.TiffFile(path) as tif:
            sis = tif.pages.first.tags.get("OlympusSIS")
            value = sis.value if sis is not None and isinstance(sis.value, dict) else {}
            when = value.get("datetime")
            metadata.acquisition_date = when.isoformat() if when is not None else None
        stacks = sorted(ets_folder(path).glob("stack*/*.ets"), key=_stack_index)
        metadata.image_count = len({stack.parent for stack in stacks}) or None
        if stacks:
            apply_ets(metadata, stacks[0])
        else:
            metadata.warnings.append(f"vsi: its pixel folder {ets_folder(path).name}/ is missing")
        return metadata


def apply_ets(metadata: FileMetadata, path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(104)
        if len(head) < 104 or not head.startswith(SIS_MAGIC) or head[64:68] != b"ETS\x00":
            raise ValueError("not an ETS file (no SIS/ETS header)")
        dimensions = struct.unpack("<I", head[12:16])[0]
        table_offset, tiles = struct.unpack("<QI", head[32:44])
        _version, pixel_type, components, _space, compression, _quality, width, height, _depth = struct.unpack(
            "<9I", head[68:104]
        )
        if not 2 <= dimensions <= 16 or tiles > MAX_TILES:
            raise ValueError("ETS header declares an implausible tile table")
        entry = 4 + 4 * dimensions + 16
        if table_offset + tiles * entry > size:
            raise ValueError("ETS tile table runs past the end of the file (truncated file)")
        handle.seek(table_offset)
        table = handle.read(tiles * entry)
    maxima = [0] * dimensions
    for index in range(tiles):
        coordinates = struct.unpack_from(f"<{dimensions}i", table, index * entry + 4)
        maxima = [max(old, new) for old, new in zip(maxima, coordinates, strict=True)]
    extra = [value + 1 for value in maxima[3:]]  # after tile x, tile y and the resolution level: z, c, t
    metadata.dimensions = Dimensions(
        x=width * (maxima[0] + 1), y=height * (maxima[1] + 1),
        z=extra[0] if extra else 1, c=(extra[1] if len(extra) > 1 else 1) * (integer(components) or 1),
        t=extra[2] if len(extra) > 2 else 1,
    )  # fmt: skip
    metadata.pixel_type = _PIXEL_TYPES.get(pixel_type)
    metadata.plane_count = tiles if maxima[0] == maxima[1] == 0 else None
    codec = _COMPRESSION.get(compression)
    if codec:
        metadata.dimension_order = metadata.dimension_order or "XYZCT"
        metadata.software = text(f"cellSens ({codec} tiles)")

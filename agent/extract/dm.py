"""Gatan DigitalMicrograph DM3 / DM4: a header (tag tree) reader written here.

The readers that exist (rosettasciio, ncempy) are GPL, which the default install may not
carry, and the format is documented (Gatan's DM3/DM4 tag-file layout, as described by
the open DM readers and the Gatan forum): a version, a byte order, then a tree of tag
groups and typed data tags. This reader walks the tree, keeps scalars and short strings,
and *seeks over* every large array, so the image data is never read. Only allow-listed
tags reach the metadata: never ``Session Info`` (operator, specimen) or file paths.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from agent.extract.model import Dimensions, FileMetadata, InstrumentInfo, PixelSize, StagePosition
from agent.extract.units import to_micrometres
from agent.extract.values import integer, iso_date, number, positive, scaled, text

MAX_TAGS = 200_000
MAX_DEPTH = 32
MAX_STRING_CHARS = 1024
_SIMPLE = {2: "h", 3: "i", 4: "H", 5: "I", 6: "f", 7: "d", 8: "?", 9: "c", 10: "b", 11: "q", 12: "Q"}
_STRUCT, _STRING, _ARRAY = 15, 18, 20
_DATA_TYPES = {1: "int16", 2: "float32", 3: "complex64", 6: "uint8", 7: "int32", 9: "int8", 10: "uint16",
               11: "uint32", 12: "float64", 13: "complex128", 14: "bool", 23: "rgba8"}  # fmt: skip


class DmExtractor:
    name = "dm"

    def accepts(self, head: bytes, path: Path) -> bool:
        return (
            len(head) >= 16
            and head[:4] in (b"\x00\x00\x00\x03", b"\x00\x00\x00\x04")
            and (path.suffix.lower() in (".dm3", ".dm4") or head[8:12] in (b"\x00\x00\x00\x01", b"\x00\x00\x00\x00"))
        )

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        with path.open("rb") as handle:
            tags, version = read_tag_tree(handle, path.stat().st_size)
        metadata.format = "dm4" if version == 4 else "dm3"
        metadata.media_type = "application/x-gatan-dm"
        apply_dm_tags(metadata, tags)
        return metadata


class _Reader:
    def __init__(self, handle: BinaryIO, size: int, version: int, little: bool) -> None:
        self.handle, self.size, self.version = handle, size, version
        self.order = "<" if little else ">"
        self.count = 0

    def big(self, fmt: str) -> Any:
        return self._unpack(">" + fmt)

    def _unpack(self, fmt: str) -> Any:
        width = struct.calcsize(fmt)
        raw = self.handle.read(width)
        if len(raw) != width:
            raise ValueError("DM tag tree ends before the file's end (truncated file)")
        return struct.unpack(fmt, raw)[0]

    def length(self) -> int:
        return int(self.big("Q" if self.version == 4 else "I"))

    def group(self, depth: int) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            raise ValueError("DM tag tree nested too deeply")
        self.handle.read(2)  # sorted, open
        entries: dict[str, Any] = {}
        for index in range(self.length()):
            self.count += 1
            if self.count > MAX_TAGS:
                raise ValueError("DM tag tree has too many tags")
            kind = self._unpack(">B")
            label = self.handle.read(self.big("H")).decode("latin-1") or f"[{index}]"
            if self.version == 4:
                self.length()  # the tag's total length; the walk below does not need it
            if kind == 20:
                entries[label] = self.group(depth + 1)
            elif kind == 21:
                entries[label] = self.data()
            elif kind == 0:
                break
            else:
                raise ValueError(f"DM tag of unknown kind {kind}")
        return entries

    def data(self) -> Any:
        if self.handle.read(4) != b"%%%%":
            raise ValueError("DM data tag without its %%%% mark")
        info = [self.length() for _ in range(self.length())]
        if not info:
            return None
        kind = info[0]
        if kind in _SIMPLE:
            return self._unpack(self.order + _SIMPLE[kind])
        if kind == _STRING:
            return self._skip_or_read(info[1], 1, decode="latin-1")
        if kind == _STRUCT:
            return [self._unpack(self.order + _SIMPLE[field]) for field in info[4::2] if field in _SIMPLE]
        if kind == _ARRAY:
            element = info[1]
            if element == _STRUCT:
                fields = info[5:-1:2]
                width = sum(struct.calcsize(_SIMPLE.get(field, "b")) for field in fields)
                return self._skip_or_read(info[-1], width)
            width = struct.calcsize(_SIMPLE.get(element, "b"))
            return self._skip_or_read(info[2], width, decode="utf-16-le" if element == 4 else None)
        raise ValueError(f"DM data of unknown type {kind}")

    def _skip_or_read(self, count: int, width: int, decode: str | None = None) -> Any:
        nbytes = count * width
        start = self.handle.tell()
        if start + nbytes > self.size:
            raise ValueError("DM array runs past the end of the file (truncated file)")
        if decode and count <= MAX_STRING_CHARS:
            raw = self.handle.read(nbytes)
            codec = decode if self.order == "<" or decode == "latin-1" else "utf-16-be"
            return raw.decode(codec, "replace")
        self.handle.seek(start + nbytes)  # image data and other large arrays: never read
        return None


def read_tag_tree(handle: BinaryIO, size: int) -> tuple[dict[str, Any], int]:
    raw = handle.read(4)
    version = struct.unpack(">I", raw)[0] if len(raw) == 4 else 0
    if version not in (3, 4):
        raise ValueError(f"not a DM3/DM4 file (version {version})")
    handle.read(8 if version == 4 else 4)  # declared file size
    little = struct.unpack(">I", handle.read(4))[0] == 1
    reader = _Reader(handle, size, version, little)
    return reader.group(0), version


def _get(tree: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _main_image(tags: dict[str, Any]) -> dict[str, Any]:
    images = [image for image in (tags.get("ImageList") or {}).values() if isinstance(image, dict)]
    # ImageList holds a thumbnail first in files saved by DigitalMicrograph; the last is the data.
    return images[-1] if images else {}


def _mode(microscope: dict[str, Any]) -> str | None:
    """TEM, STEM or SEM, with the imaging mode when it is not plain imaging (DIFFRACTION, EELS...)."""
    operation = (text(microscope.get("Operation Mode")) or "").upper()
    illumination = (text(microscope.get("Illumination Mode")) or "").upper()
    imaging = (text(microscope.get("Imaging Mode")) or "").upper()
    base = "SEM" if illumination == "SEM" else {"SCANNING": "STEM", "IMAGING": "TEM"}.get(operation, operation or None)
    if base and imaging and imaging != "IMAGING":
        return f"{base} {imaging.lower()}"
    return base


def apply_dm_tags(metadata: FileMetadata, tags: dict[str, Any]) -> None:
    image = _main_image(tags)
    data = image.get("ImageData") or {}
    image_tags = image.get("ImageTags") or {}
    dims = [integer(value) for value in (data.get("Dimensions") or {}).values()]
    metadata.dimensions = Dimensions(**dict(zip("xyz", dims, strict=False)))
    metadata.pixel_type = _DATA_TYPES.get(integer(data.get("DataType")) or -1)
    calibrations = [
        value for value in (_get(data, "Calibrations", "Dimension") or {}).values() if isinstance(value, dict)
    ]
    sizes_nm: dict[str, float | None] = {}
    for axis, calibration in zip("xyz", calibrations, strict=False):
        unit = text(calibration.get("Units"))
        micrometres = to_micrometres(number(calibration.get("Scale")), unit.replace("Âµ", "µ") if unit else "")
        sizes_nm[axis] = positive(scaled(micrometres, 1e3))
    microscope = image_tags.get("Microscope Info") or {}
    electron = metadata.electron_info()
    electron.pixel_size_nm = PixelSize(**sizes_nm)
    metadata.pixel_size_um = PixelSize(**{axis: scaled(value, 1e-3) for axis, value in sizes_nm.items()})
    voltage = number(microscope.get("Voltage"))
    electron.accelerating_voltage_kv = positive(scaled(voltage, 1e-3 if voltage and voltage > 1000 else 1.0))
    electron.magnification = positive(number(microscope.get("Indicated Magnification")))
    electron.camera_length_mm = positive(number(microscope.get("STEM Camera Length")))
    electron.mode = _mode(microscope)
    if electron.mode == "SEM":
        electron.camera_length_mm = None  # DM records a placeholder on SEMs
    stage = microscope.get("Stage Position") or {}
    if isinstance(stage, dict) and stage:
        electron.stage = StagePosition(
            x_um=number(stage.get("Stage X")), y_um=number(stage.get("Stage Y")), z_um=number(stage.get("Stage Z")),
            alpha_deg=number(stage.get("Stage Alpha")), beta_deg=number(stage.get("Stage Beta")),
        )  # fmt: skip
    acquisition = image_tags.get("Acquisition") or {}
    electron.detector = text(_get(acquisition, "Device", "Name")) or ("DigiScan" if "DigiScan" in image_tags else None)
    exposure = number(_get(acquisition, "Parameters", "High Level", "Exposure (s)")) or number(
        _get(image_tags, "DataBar", "Exposure Time (s)")
    )
    electron.exposure_ms = positive(scaled(exposure, 1e3))
    electron.dwell_time_us = positive(number(_get(image_tags, "DigiScan", "Sample Time")))
    metadata.instrument = InstrumentInfo(
        model=text(microscope.get("Name")) or text(microscope.get("Microscope")),
    )
    gms = _get(image_tags, "GMS Version", "Created") or _get(image_tags, "GMS Version", "Saved")
    metadata.software = f"DigitalMicrograph {text(gms)}" if text(gms) else "DigitalMicrograph"
    date = text(_get(image_tags, "DataBar", "Acquisition Date"))
    time_ = text(_get(image_tags, "DataBar", "Acquisition Time"))
    if date:
        metadata.acquisition_date = iso_date(f"{date} {time_}") if time_ else iso_date(date)
        if metadata.acquisition_date is None:
            metadata.acquisition_date = iso_date(f"{date} 12:00:00 AM")

"""TIFF family: OME-TIFF, Micro-Manager, ImageJ, Zeiss LSM and plain TIFF (tifffile, header only).

Only the header and the first IFD are read; IFDs of large files are not walked, pixel
data is never decoded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.extract.model import Declaration, Dimensions, FileMetadata, PixelSize
from agent.extract.ome import apply_ome
from agent.extract.tiff_vendor import apply_vendor_tiff
from agent.extract.units import to_micrometres


class _Collector(logging.Handler):
    """Turns tifffile's log messages about the file being read into per-file warnings."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        messages = getattr(self.local, "messages", None)
        if messages is not None and len(messages) < MAX_TIFF_WARNINGS:
            messages.append(record.getMessage()[:200])


MAX_TIFF_WARNINGS = 10
_collector = _Collector()
_tifffile_logger = logging.getLogger("tifffile")
_tifffile_logger.addHandler(_collector)
_tifffile_logger.propagate = False  # reported per file instead of on stderr

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_RESOLUTION_UNITS = {2: "in", 3: "cm"}
_MM_SUMMARY_KEYS = (
    "MicroManagerVersion", "MetadataVersion", "StartTime", "Prefix", "Frames", "Slices", "Channels", "Positions",
    "z-step_um", "WaitInterval", "PixelType",
)  # fmt: skip


class TiffExtractor:
    name = "tiff"

    def accepts(self, head: bytes, path: Path) -> bool:
        return head[:4] in TIFF_MAGIC or path.suffix.lower() in (".tif", ".tiff", ".lsm", ".btf")

    def refuses(self, head: bytes) -> str | None:
        """A TIFF name without TIFF's magic number: said without running the parser."""
        return None if head[:4] in TIFF_MAGIC else "not a TIFF file (no TIFF magic number)"

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        _collector.local.messages = metadata.warnings
        try:
            return self._extract(path, metadata)
        finally:
            _collector.local.messages = None

    def _extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        import tifffile  # on first use: a run without TIFFs never imports it (nor numpy)

        metadata.media_type = "image/tiff"
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            metadata.format = "tiff"
            metadata.dimensions = Dimensions(x=page.imagewidth, y=page.imagelength, z=1, c=page.samplesperpixel, t=1)
            metadata.pixel_type = str(page.dtype) if page.dtype is not None else None
            metadata.software = _tag(page, "Software")
            metadata.acquisition_date = _tiff_datetime(_tag(page, "DateTime"))
            metadata.pixel_size_um = _resolution(page, None)
            if tif.is_ome:
                metadata.format = "ome-tiff"
                software = metadata.software
                apply_ome(metadata, page.description)
                metadata.software = metadata.software or software
            elif tif.is_lsm:
                _apply_lsm(metadata, tif)
            elif tif.is_imagej:
                _apply_imagej(metadata, tif, page)
            elif tif.is_shaped:
                # The first page's own JSON: tif.shaped_metadata detects every series first,
                # quadratic in the pages (26 s for 10,000 single-page writes).
                shape = _shape_of(page.description)
                if isinstance(shape, list) and len(shape) >= 3:
                    metadata.dimensions.z = int(shape[-3])
                    metadata.plane_count = int(shape[-3])
            apply_vendor_tiff(metadata, tif, page)
            if tif.is_micromanager:
                metadata.format = "micromanager-tiff"
                _apply_micromanager(metadata, tif)
            # plane_count otherwise: the IFD count, from the whole-file check (agent.extract.registry)
        return metadata


def _shape_of(description: str) -> Any:
    try:
        value = json.loads(description)
    except ValueError:
        return None
    return value.get("shape") if isinstance(value, dict) else None


def _tag(page: Any, name: str) -> str | None:
    tag = page.tags.get(name)
    if tag is None or not isinstance(tag.value, str):
        return None
    return tag.value.strip("\x00 ") or None


def _tiff_datetime(text: str | None) -> str | None:
    if not text:
        return None
    for pattern in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text[:19], pattern).isoformat()
        except ValueError:
            continue
    return None


def _resolution(page: Any, unit: str | None) -> PixelSize:
    """Pixel size from X/YResolution (pixels per unit); unit from ImageJ, else ResolutionUnit."""
    tags = page.tags
    resolution_unit = tags.get("ResolutionUnit")
    unit = unit or _RESOLUTION_UNITS.get(int(resolution_unit.value) if resolution_unit else 0)
    if unit is None:
        return PixelSize()

    def size(name: str) -> float | None:
        tag = tags.get(name)
        if tag is None:
            return None
        numerator, denominator = tag.value
        if not numerator or not denominator:
            return None
        return to_micrometres(denominator / numerator, unit)

    return PixelSize(x=size("XResolution"), y=size("YResolution"))


def _apply_imagej(metadata: FileMetadata, tif: Any, page: Any) -> None:
    metadata.format = "imagej-tiff"
    info = tif.imagej_metadata or {}
    metadata.dimensions.z = int(info.get("slices", 1))
    metadata.dimensions.c = int(info.get("channels", metadata.dimensions.c or 1))
    metadata.dimensions.t = int(info.get("frames", 1))
    if "images" in info:
        metadata.plane_count = int(info["images"])
    unit = info.get("unit")
    unit = {"micron": "µm", "\\u00B5m": "µm", "pixel": None}.get(unit, unit) if isinstance(unit, str) else None
    metadata.pixel_size_um = _resolution(page, unit) if unit else _resolution(page, None)
    if info.get("spacing") and unit:
        metadata.pixel_size_um.z = to_micrometres(float(info["spacing"]), unit)
    if info.get("ImageJ"):
        metadata.software = metadata.software or f"ImageJ {info['ImageJ']}"


def _apply_micromanager(metadata: FileMetadata, tif: Any) -> None:
    summary = (tif.micromanager_metadata or {}).get("Summary") or {}
    metadata.micromanager = {key: summary.get(key) for key in _MM_SUMMARY_KEYS if key in summary}
    declaration = _mm_declaration(summary, tif)
    if declaration is not None:
        metadata.declares.append(declaration)
    version = summary.get("MicroManagerVersion")
    if version:
        metadata.software = f"Micro-Manager {version}"
    if metadata.acquisition_date is None and summary.get("StartTime"):
        try:
            metadata.acquisition_date = datetime.strptime(summary["StartTime"], "%Y-%m-%d %H:%M:%S %z").isoformat()
        except ValueError:
            metadata.warnings.append(f"unparsed Micro-Manager StartTime {summary['StartTime']!r}")


def _mm_declaration(summary: dict[str, Any], tif: Any) -> Declaration | None:
    """A Micro-Manager run declares Frames x Slices x Channels x Positions images, spread over
    its files; this file holds the images its index map lists."""
    raw = [summary.get(key) for key in ("Frames", "Slices", "Channels", "Positions")]
    counts = [count for count in raw if isinstance(count, int) and not isinstance(count, bool) and count > 0]
    if len(counts) != 4:
        return None
    index = (tif.micromanager_metadata or {}).get("IndexMap")
    if isinstance(index, dict) and "Frame" in index:
        held = len(index["Frame"])
    else:
        held = len(index) if index is not None and hasattr(index, "__len__") else len(tif.pages)
    key = f"{summary.get('Prefix')}/{summary.get('StartTime')}/{summary.get('UUID')}"
    group = hashlib.sha256(key.encode()).hexdigest()[:16]
    expected = counts[0] * counts[1] * counts[2] * counts[3]
    return Declaration(kind="micromanager", group=group, expected=expected, contributes=held, unit="images")


def _apply_lsm(metadata: FileMetadata, tif: Any) -> None:
    metadata.format = "lsm-tiff"
    info = tif.lsm_metadata or {}
    metadata.software = metadata.software or "Zeiss LSM"
    metadata.instrument.manufacturer = "Carl Zeiss"
    metadata.dimensions = Dimensions(
        x=info.get("DimensionX"), y=info.get("DimensionY"), z=info.get("DimensionZ"),
        c=info.get("DimensionChannels"), t=info.get("DimensionTime"),
    )  # fmt: skip
    metadata.pixel_size_um = PixelSize(
        x=to_micrometres(info.get("VoxelSizeX"), "m"),
        y=to_micrometres(info.get("VoxelSizeY"), "m"),
        z=to_micrometres(info.get("VoxelSizeZ"), "m"),
    )
    if metadata.dimensions.z and metadata.dimensions.t:
        metadata.plane_count = metadata.dimensions.z * metadata.dimensions.t

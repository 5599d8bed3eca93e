"""FEI / Thermo Fisher TIA: a SER data file and its EMI companion, one acquisition.

Written here: the only readers (ncempy, rosettasciio) are GPL, and the SER header is
documented (FEI's "Series Data File" description): byte order, series id 0x0197, version,
data type, element counts, offset table, then per-element calibration before the data.
Only that header and the first element's calibration are read. The EMI's
``<ObjectInfo>`` XML gives the microscope settings; its ``User`` entry and any path are
never read (the EMI's description block is read by label from an allow-list).
"""

from __future__ import annotations

import glob
import re
import struct
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from agent.extract.model import FileMetadata, InstrumentInfo, PixelSize, StagePosition
from agent.extract.values import integer, iso_date, number, parse_xml, positive, scaled, text

SER_MAGIC = b"II\x97\x01"
EMI_MAX_BYTES = 16 << 20
_SER_NAME = re.compile(r"^(?P<stem>.+)_(?P<index>\d+)\.ser$", re.IGNORECASE)
_IMAGE_2D = 0x4122
_SPECTRUM_1D = 0x4120
_ALLOWED_LABELS = ("Microscope", "High tension", "Mode", "Defocus", "Magnification", "Spot size", "Camera length",
                   "Stage X", "Stage Y", "Stage Z", "Stage A", "Stage B")  # fmt: skip


class TiaExtractor:
    name = "tia"

    def accepts(self, head: bytes, path: Path) -> bool:
        if head.startswith(SER_MAGIC):
            return True
        return path.suffix.lower() == ".emi"

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        if path.suffix.lower() == ".emi":
            metadata.format = "tia-emi"
            metadata.media_type = "application/x-fei-emi"
            apply_emi(metadata, read_object_info(path))
            series = sorted(path.parent.glob(f"{glob.escape(path.stem)}_*.ser"))
            metadata.image_count = len(series) or None
            if series:
                with series[0].open("rb") as handle:
                    _apply_ser_header(metadata, handle, series[0].stat().st_size)
            return metadata
        metadata.format = "tia-ser"
        metadata.media_type = "application/x-fei-ser"
        with path.open("rb") as handle:
            _apply_ser_header(metadata, handle, path.stat().st_size)
        companion = emi_companion(path)
        if companion is not None:
            metadata.companion = companion.name
            apply_emi(metadata, read_object_info(companion))
        return metadata


def emi_companion(path: Path) -> Path | None:
    match = _SER_NAME.match(path.name)
    if match is None:
        return None
    for candidate in (path.with_name(match["stem"] + ".emi"), path.with_name(match["stem"] + ".EMI")):
        if candidate.is_file():
            return candidate
    return None


def _apply_ser_header(metadata: FileMetadata, handle: BinaryIO, size: int) -> None:
    head = handle.read(34)
    if len(head) < 30 or not head.startswith(SER_MAGIC):
        raise ValueError("not a TIA SER file")
    version, data_type, _tag_type, _total, valid = struct.unpack("<HIIII", head[4:22])
    wide = version >= 0x0220
    offset_array = struct.unpack("<Q" if wide else "<I", head[22 : 30 if wide else 26])[0]
    if offset_array >= size:
        raise ValueError("SER offset table lies beyond the end of the file (truncated file)")
    metadata.plane_count = integer(valid)
    metadata.dimensions.t = integer(valid) if valid > 1 else metadata.dimensions.t
    handle.seek(offset_array)
    raw = handle.read(8 if wide else 4)
    if len(raw) < (8 if wide else 4):
        raise ValueError("SER offset table truncated")
    first = struct.unpack("<Q" if wide else "<I", raw)[0]
    if not 0 < first < size:
        raise ValueError("SER's first element lies beyond the end of the file (truncated file)")
    handle.seek(first)
    if data_type == _IMAGE_2D:
        element = handle.read(50)
        if len(element) < 50:
            raise ValueError("SER image element truncated")
        _x0, delta_x, _ex, _y0, delta_y, _ey, _type, width, height = struct.unpack("<ddiddiHII", element)
        metadata.dimensions.x, metadata.dimensions.y = int(width), int(height)
        nm_x, nm_y = positive(scaled(number(delta_x), 1e9)), positive(scaled(number(delta_y), 1e9))
        metadata.electron_info().pixel_size_nm = PixelSize(x=nm_x, y=nm_y)
        metadata.pixel_size_um = PixelSize(x=scaled(nm_x, 1e-3), y=scaled(nm_y, 1e-3))
    elif data_type == _SPECTRUM_1D:
        element = handle.read(26)
        if len(element) == 26:
            metadata.dimensions.x = int(struct.unpack("<ddiHI", element)[4])


def read_object_info(path: Path) -> etree._Element:
    with path.open("rb") as handle:
        data = handle.read(EMI_MAX_BYTES)
    start, end = data.find(b"<ObjectInfo>"), data.find(b"</ObjectInfo>")
    if start < 0 or end < start:
        raise ValueError("EMI has no <ObjectInfo> block")
    return parse_xml(data[start : end + len(b"</ObjectInfo>")])


def apply_emi(metadata: FileMetadata, info: etree._Element) -> None:
    described: dict[str, tuple[str | None, str | None]] = {}
    for item in info.iterfind("ExperimentalDescription/Root/Data"):
        label = text(item.findtext("Label"))
        if label in _ALLOWED_LABELS:
            described[label] = (text(item.findtext("Value")), text(item.findtext("Unit")))
    electron = metadata.electron_info()
    voltage = number(info.findtext("ExperimentalConditions/MicroscopeConditions/AcceleratingVoltage"))
    electron.accelerating_voltage_kv = positive(scaled(voltage, 1e-3)) or positive(
        number(described.get("High tension", (None, None))[0])
    )
    magnification = number((text(info.findtext("AcquireInfo/Magnification")) or "").split(" ")[0])
    electron.magnification = positive(magnification) or positive(number(described.get("Magnification", (None,))[0]))
    electron.spot_size = positive(number(described.get("Spot size", (None,))[0]))
    electron.defocus_um = number(described.get("Defocus", (None,))[0])
    electron.camera_length_mm = positive(number(described.get("Camera length", (None,))[0]))
    mode = described.get("Mode", (None,))[0]
    electron.mode = mode
    electron.detector = text(info.findtext("AcquireInfo/CameraNamePath")) or text(
        info.findtext("AcquireInfo/DetectorName")
    )
    dwell = number(info.findtext("AcquireInfo/DwellTimePath"))
    if dwell and electron.detector is None:
        electron.dwell_time_us = scaled(dwell, 1e6)
    elif dwell:
        electron.exposure_ms = positive(scaled(dwell, 1e3))
    electron.stage = StagePosition(
        x_um=number(described.get("Stage X", (None,))[0]),
        y_um=number(described.get("Stage Y", (None,))[0]),
        z_um=number(described.get("Stage Z", (None,))[0]),
        alpha_deg=number(described.get("Stage A", (None,))[0]),
        beta_deg=number(described.get("Stage B", (None,))[0]),
    )
    microscope = described.get("Microscope", (None,))[0]
    if microscope and microscope.startswith("Microscope "):
        microscope = microscope[len("Microscope ") :]
    metadata.instrument = InstrumentInfo(manufacturer=text(info.findtext("Manufacturer")), model=microscope)
    metadata.acquisition_date = iso_date(info.findtext("AcquireDate"))
    metadata.software = "TIA"

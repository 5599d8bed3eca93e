"""MRC / MRCS / MAP (CCP-EM MRC2014, EMDB maps, EPU and SerialEM stacks), read with mrcfile
(BSD) in header-only mode; voxel data never read.

FEI1/FEI2 extended headers (EPU, Velox exports) give the first section's voltage,
magnification, pixel size, camera, dose, dwell time, defocus and stage; their
``Input stack filename`` (a path) is never read.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.extract.model import Dimensions, FileMetadata, PixelSize, StagePosition
from agent.extract.values import integer, number, positive, scaled, text

MRC_SUFFIXES = (".mrc", ".mrcs", ".map")  # IMOD's .st/.ali/.rec are taken by their MAP tag only
MRC_MAP_TAG_OFFSET = 208
_MODES = {0: "int8", 1: "int16", 2: "float32", 3: "complex int16", 4: "complex64", 6: "uint16", 12: "float16",
          101: "uint4"}  # fmt: skip
_OLE_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_ELECTRONS_PER_M2_TO_PER_A2 = 1e-20


class MrcExtractor:
    name = "mrc"

    def accepts(self, head: bytes, path: Path) -> bool:
        tagged = head[MRC_MAP_TAG_OFFSET : MRC_MAP_TAG_OFFSET + 4] == b"MAP "
        return tagged or (path.suffix.lower() in MRC_SUFFIXES and len(head) >= 224)

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        import mrcfile

        with (
            warnings.catch_warnings(record=True) as caught,
            mrcfile.open(path, mode="r", header_only=True, permissive=True) as mrc,
        ):
            warnings.simplefilter("always")
            header = mrc.header
            if header is None:
                raise ValueError("not an MRC file (no header)")
            metadata.format = "mrc"
            metadata.media_type = "application/x-mrc"
            metadata.dimensions = Dimensions(x=int(header.nx), y=int(header.ny), z=int(header.nz))
            mode = int(header.mode)
            metadata.pixel_type = _MODES.get(mode, f"mode {mode}")
            voxel = mrc.voxel_size
            # float32 in the header: seven significant digits are all it holds
            sizes_a = [positive(number(f"{float(v):.7g}")) for v in (voxel.x, voxel.y, voxel.z)]
            metadata.pixel_size_um = PixelSize(**dict(zip("xyz", (scaled(v, 1e-4) for v in sizes_a), strict=True)))
            electron = metadata.electron_info()
            electron.pixel_size_nm = PixelSize(**dict(zip("xyz", (scaled(v, 0.1) for v in sizes_a), strict=True)))
            exttyp = text(bytes(header.exttyp))
            electron.extended_header = exttyp
            if exttyp in ("FEI1", "FEI2") and mrc.extended_header is not None and len(mrc.extended_header):
                _apply_fei(metadata, mrc.indexed_extended_header)
            metadata.warnings += [f"mrc: {str(item.message)[:200]}" for item in caught[:5]]
            warning = _size_warning(path, header, mode)
            if warning:
                metadata.warnings.append(warning)
        return metadata


def _size_warning(path: Path, header: Any, mode: int) -> str | None:
    bits = {0: 8, 1: 16, 2: 32, 3: 32, 4: 64, 6: 16, 12: 16, 101: 4}.get(mode)
    if bits is None:
        return None
    declared = 1024 + int(header.nsymbt) + (int(header.nx) * int(header.ny) * int(header.nz) * bits + 7) // 8
    found = path.stat().st_size
    return f"mrc: file is {declared - found} bytes shorter than its header declares" if found < declared else None


def _field(record: Any, name: str) -> Any:
    names = record.dtype.names or ()
    return record[name] if name in names else None


def _apply_fei(metadata: FileMetadata, extended: Any) -> None:
    record = extended[0]
    electron = metadata.electron_info()
    electron.accelerating_voltage_kv = positive(scaled(number(_field(record, "HT")), 1e-3))
    electron.magnification = positive(number(_field(record, "Magnification")))
    electron.camera_length_mm = positive(scaled(number(_field(record, "Camera length")), 1e3))
    electron.spot_size = positive(number(_field(record, "Spot index")))
    camera = _field(record, "Camera name")
    detector = _field(record, "STEM Detector name")
    electron.detector = text(bytes(camera)) if camera is not None else None
    if not electron.detector and detector is not None:
        electron.detector = text(bytes(detector))
    pixel_x = positive(number(_field(record, "Pixel size X")))
    pixel_y = positive(number(_field(record, "Pixel size Y")))
    if pixel_x:
        electron.pixel_size_nm = PixelSize(x=scaled(pixel_x, 1e9), y=scaled(pixel_y, 1e9))
    electron.dose_e_per_a2 = positive(scaled(number(_field(record, "Dose")), _ELECTRONS_PER_M2_TO_PER_A2))
    electron.exposure_ms = positive(scaled(number(_field(record, "Integration time")), 1e3))
    electron.dwell_time_us = positive(scaled(number(_field(record, "Dwell time")), 1e6))
    electron.defocus_um = scaled(number(_field(record, "Defocus")), 1e6)
    electron.frames = integer(len(extended)) if len(extended) > 1 else None
    electron.stage = StagePosition(
        x_um=scaled(number(_field(record, "X-Stage")), 1e6),
        y_um=scaled(number(_field(record, "Y-Stage")), 1e6),
        z_um=scaled(number(_field(record, "Z-Stage")), 1e6),
        alpha_deg=number(_field(record, "Alpha tilt")),
        beta_deg=number(_field(record, "Beta tilt")),
    )
    microscope = _field(record, "Microscope type")
    metadata.instrument.manufacturer = "Thermo Fisher Scientific"
    metadata.instrument.model = text(bytes(microscope)) if microscope is not None else None
    application = _field(record, "Application")
    version = _field(record, "Application version")
    if application is not None:
        metadata.software = " ".join(
            part for part in (text(bytes(application)), text(bytes(version)) if version is not None else None) if part
        ) or None  # fmt: skip
    days = number(_field(record, "Timestamp"))
    if days and days > 0:
        metadata.acquisition_date = (_OLE_EPOCH + timedelta(days=days)).isoformat()

"""EMD (HDF5): Thermo Fisher Velox EMD and Berkeley EMD, read with h5py (BSD).

Velox keeps per-image metadata as JSON in ``Data/<kind>/<id>/Metadata``; only allow-listed
keys are read (never ``Sample``, ``CustomProperties``, the computer name or the logs,
which name people and machines). A Berkeley EMD is told apart by its root
``version_major`` attribute and its ``emd_group_type`` data groups. Pixel data is never read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from agent.extract.model import Dimensions, FileMetadata, InstrumentInfo, PixelSize, StagePosition
from agent.extract.units import to_micrometres
from agent.extract.values import integer, iso_date, number, positive, scaled, text

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_VELOX_METADATA_BYTES = 4 << 20
_VELOX_MODES = {"1": "TEM", "2": "STEM"}


class EmdExtractor:
    name = "emd"

    def accepts(self, head: bytes, path: Path) -> bool:
        return path.suffix.lower() == ".emd" or (
            head.startswith(HDF5_MAGIC) and path.suffix.lower() in (".h5", ".hdf5")
        )

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        import h5py

        with h5py.File(path, "r") as handle:
            if "Version" in handle and b"Velox" in _first_bytes(handle["Version"]):
                _apply_velox(metadata, handle)
            elif "version_major" in handle.attrs:
                _apply_berkeley(metadata, handle)
            # else: a plain HDF5 file is well-formed data, not a malformed EMD: size and time only
        return metadata


def _first_bytes(dataset: Any) -> bytes:
    value = dataset[0] if dataset.shape else dataset[()]
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")


def _json(dataset: Any) -> dict[str, Any]:
    raw = _first_bytes(dataset)
    loaded = json.loads(raw[:MAX_VELOX_METADATA_BYTES])
    return loaded if isinstance(loaded, dict) else {}


def _velox_image_metadata(handle: Any) -> tuple[dict[str, Any], list[int], int]:
    for kind in ("Image", "SpectrumImage", "Spectrum"):
        group = handle.get(f"Data/{kind}")
        if group is None:
            continue
        for name in group:
            item = group[name]
            if "Metadata" not in item:
                continue
            column = item["Metadata"]
            if column.size > MAX_VELOX_METADATA_BYTES:
                raise ValueError("Velox metadata block too large")
            raw = column[:, 0].tobytes().split(b"\x00", 1)[0]
            shape = list(item["Data"].shape) if "Data" in item else []
            return json.loads(raw), shape, len(group)
    return {}, [], 0


def _apply_velox(metadata: FileMetadata, handle: Any) -> None:
    metadata.format = "velox-emd"
    metadata.media_type = "application/x-hdf5"
    info = _json(handle["Info"]) if "Info" in handle else {}
    version = text(info.get("applicationVersion"))
    metadata.software = f"Velox {version}" if version else "Velox"
    found, shape, count = _velox_image_metadata(handle)
    metadata.image_count = count or None
    if len(shape) >= 2:
        metadata.dimensions = Dimensions(y=shape[0], x=shape[1], t=shape[2] if len(shape) > 2 else None)
    instrument = found.get("Instrument") or {}
    optics = found.get("Optics") or {}
    result = found.get("BinaryResult") or {}
    acquisition = found.get("Acquisition") or {}
    metadata.instrument = InstrumentInfo(
        manufacturer=text(instrument.get("Manufacturer")),
        model=" ".join(part for part in (text(instrument.get("InstrumentClass")),
                                         text(instrument.get("InstrumentId"))) if part) or None,
    )  # fmt: skip
    seconds = integer((acquisition.get("AcquisitionStartDatetime") or {}).get("DateTime"))
    metadata.acquisition_date = iso_date(seconds) if seconds else None
    electron = metadata.electron_info()
    electron.accelerating_voltage_kv = positive(scaled(number(optics.get("AccelerationVoltage")), 1e-3))
    electron.magnification = positive(number(optics.get("NominalMagnification")))
    electron.camera_length_mm = positive(scaled(number(optics.get("CameraLength")), 1e3))
    electron.spot_size = positive(number(optics.get("SpotIndex")))
    electron.defocus_um = scaled(number(optics.get("Defocus")), 1e6)
    mode = _VELOX_MODES.get(str(optics.get("OperatingMode")))
    submode = text(optics.get("TemOperatingSubMode"))
    electron.mode = f"{mode} {submode}" if mode and submode and mode == "TEM" else mode
    electron.detector = text(result.get("Detector"))
    size = result.get("PixelSize") or {}
    unit_x, unit_y = result.get("PixelUnitX") or "m", result.get("PixelUnitY") or "m"
    nm_x = positive(scaled(to_micrometres(number(size.get("width")), unit_x), 1e3))
    nm_y = positive(scaled(to_micrometres(number(size.get("height")), unit_y), 1e3))
    electron.pixel_size_nm = PixelSize(x=nm_x, y=nm_y)
    metadata.pixel_size_um = PixelSize(x=scaled(nm_x, 1e-3), y=scaled(nm_y, 1e-3))
    detector_index = str(result.get("DetectorIndex", ""))
    detector = (found.get("Detectors") or {}).get(f"Detector-{detector_index}") or {}
    electron.exposure_ms = positive(scaled(number(detector.get("ExposureTime")), 1e3))
    scan = found.get("Scan") or {}
    electron.dwell_time_us = positive(scaled(number(scan.get("DwellTime")), 1e6))
    stage = found.get("Stage") or {}
    position = stage.get("Position") or {}
    electron.stage = StagePosition(
        x_um=scaled(number(position.get("x")), 1e6),
        y_um=scaled(number(position.get("y")), 1e6),
        z_um=scaled(number(position.get("z")), 1e6),
        alpha_deg=_degrees(number(stage.get("AlphaTilt"))),
        beta_deg=_degrees(number(stage.get("BetaTilt"))),
    )


def _degrees(radians: float | None) -> float | None:
    return None if radians is None else float(f"{math.degrees(radians):.6g}")


def _apply_berkeley(metadata: FileMetadata, handle: Any) -> None:
    metadata.format = "berkeley-emd"
    metadata.media_type = "application/x-hdf5"
    major, minor = handle.attrs.get("version_major"), handle.attrs.get("version_minor")
    metadata.software = f"EMD {integer(major)}.{integer(minor)}"
    groups: list[Any] = []
    handle.visititems(lambda _name, item: groups.append(item) if "emd_group_type" in item.attrs else None)
    metadata.image_count = len(groups) or None
    if not groups:
        return
    group = groups[0]
    data = group.get("data")
    if data is not None:
        shape = list(data.shape)
        metadata.dimensions = Dimensions(**dict(zip("yxz", shape, strict=False)))
    sizes: dict[str, float | None] = {}
    for axis, index in (("y", 1), ("x", 2)):
        dim = group.get(f"dim{index}")
        if dim is not None and dim.shape and dim.shape[0] > 1:
            step = number(dim[1] - dim[0])
            sizes[axis] = positive(to_micrometres(abs(step) if step else None, _attr_text(dim.attrs.get("units"))))
    metadata.pixel_size_um = PixelSize(**sizes)
    microscope = handle.get("microscope")
    if microscope is not None:
        electron = metadata.electron_info()
        electron.accelerating_voltage_kv = positive(number(microscope.attrs.get("high tension")))
        electron.magnification = positive(number(microscope.attrs.get("magnification")))
        metadata.instrument = InstrumentInfo(model=text(_attr_text(microscope.attrs.get("name"))))


def _attr_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else None

"""Andor SIF (Solis), header read with sif_parser (BSD); pixels never read.

sif_parser's public readers load the pixel data, so its header parser
(``sif_parser._sif_open._open``) is used; a change there surfaces as a per-file warning.
``OriginalFilename`` (a Windows path with the user's folder) and the user text are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from agent.extract.model import CameraInfo, Channel, Dimensions, FileMetadata, InstrumentInfo
from agent.extract.values import integer, iso_date, number, positive, scaled, text

NO_TEMPERATURE = -999.0  # what Solis writes when the sensor temperature was not read
SIF_MAGIC = b"Andor Technology Multi-Channel File"


class SifExtractor:
    name = "sif"

    def accepts(self, head: bytes, path: Path) -> bool:
        return head.startswith(SIF_MAGIC)

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        apply_sif(metadata, read_sif_header(path))
        return metadata


class _EndRaises:
    """A file whose reads raise ``EOFError`` at its end: sif_parser's word reader loops
    forever on an empty read, so a truncated SIF would hang it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if size and not data:
            raise EOFError("SIF header ends before the end of the file (truncated file)")
        return data

    def readline(self) -> bytes:
        line = self._handle.readline()
        if not line:
            raise EOFError("SIF header ends before the end of the file (truncated file)")
        return line

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)


def read_sif_header(path: Path) -> dict[str, Any]:
    """The SIF header as sif_parser reads it; raises ``EOFError`` on a truncated header."""
    from sif_parser import _sif_open

    with path.open("rb") as handle:
        result = _sif_open._open(_EndRaises(handle))
    return next(part for part in result if isinstance(part, dict))


def apply_sif(metadata: FileMetadata, info: dict[str, Any]) -> None:
    metadata.format = "sif"
    metadata.media_type = "application/x-andor-sif"
    metadata.software = f"Andor SIF version {info['SifVersion']}" if "SifVersion" in info else None
    metadata.acquisition_date = iso_date(info.get("ExperimentTime"))
    metadata.instrument = InstrumentInfo(manufacturer="Andor", model=text(info.get("DetectorType")))
    size = info.get("size") or (None, None)
    frames = integer(info.get("NumberOfFrames"))
    metadata.dimensions = Dimensions(x=integer(size[0]), y=integer(size[1]), t=frames)
    metadata.plane_count = frames
    exposure = positive(scaled(number(info.get("ExposureTime")), 1e3))
    wavelength = positive(number(info.get("RamanExWavelength")))
    if wavelength:
        metadata.channels = [Channel(excitation_nm=wavelength, exposure_ms=exposure)]
    calibration = info.get("Calibration_data")
    coefficients = [value for value in (number(item) for item in calibration or ()) if value is not None]
    sensor = info.get("DetectorDimensions") or ()
    temperature = number(info.get("DetectorTemperature"))
    metadata.camera = CameraInfo(
        model=text(info.get("DetectorType")),
        exposure_ms=exposure,
        em_gain=number(info.get("GainDAC")),
        binning=f"{info['xbin']}x{info['ybin']}" if "xbin" in info and "ybin" in info else None,
        temperature_c=temperature if temperature != NO_TEMPERATURE else None,
        sensor="x".join(str(side) for side in sensor) or None,
        cycle_time_ms=scaled(number(info.get("CycleTime")), 1e3),
        wavelength_calibration=coefficients if coefficients != [0.0, 1.0, 0.0, 0.0] else [],
    )

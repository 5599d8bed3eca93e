"""Vendor flavours of TIFF that tifffile recognises: Aperio SVS, Hamamatsu NDPI, MetaMorph
STK, Olympus FluoView, ScanImage and TFS Falcon EER; what tifffile exposes for each.

Slides give magnification (as an objective) and microns per pixel; STK its camera,
calibration and stage; EER its frame count. The SVS ``User`` and ``Filename`` fields and
ScanImage's user-settable text are never read.
"""

from __future__ import annotations

from typing import Any

from agent.extract.model import CameraInfo, FileMetadata, InstrumentInfo, Objective, PixelSize, StagePosition
from agent.extract.values import integer, iso_date, number, positive, scaled, text


def apply_vendor_tiff(metadata: FileMetadata, tif: Any, page: Any) -> None:
    if tif.is_svs:
        _svs(metadata, page)
    elif getattr(tif, "is_ndpi", False):
        _ndpi(metadata, tif)
    elif tif.is_stk:
        _stk(metadata, tif)
    elif tif.is_fluoview:
        _fluoview(metadata, tif)
    elif tif.is_scanimage:
        _scanimage(metadata, tif)
    elif getattr(tif, "is_eer", False):
        _eer(metadata, tif)


def _svs(metadata: FileMetadata, page: Any) -> None:
    metadata.format = "svs"
    info = svs_fields(page.description or "")
    metadata.software = text(str(info.get("Header", "")).split("\n")[0]) or metadata.software
    metadata.instrument = InstrumentInfo(manufacturer="Leica Biosystems (Aperio)", model=text(info.get("ScanScope ID")))
    magnification = positive(number(info.get("AppMag")))
    metadata.objectives = [Objective(magnification=magnification)] if magnification else []
    mpp = positive(number(info.get("MPP")))
    metadata.pixel_size_um = PixelSize(x=mpp, y=mpp) if mpp else metadata.pixel_size_um
    date, time_ = text(info.get("Date")), text(info.get("Time"))
    if date:
        metadata.acquisition_date = iso_date(f"{date} {time_ or '00:00:00'}".replace("/", "-")) or _us_date(date, time_)
    metadata.image_count = len(tif_pages(page))


def svs_fields(description: str) -> dict[str, str]:
    """Aperio's ImageDescription: a header line, then ``|key = value`` pairs."""
    parts = description.split("|")
    fields = {"Header": parts[0].strip()}
    for part in parts[1:]:
        key, separator, value = part.partition("=")
        if separator:
            fields[key.strip()] = value.strip()
    return fields


def tif_pages(page: Any) -> list[Any]:
    parent = getattr(page, "parent", None)
    return list(parent.series) if parent is not None else []


def _us_date(date: str, time_: str | None) -> str | None:
    from datetime import datetime

    try:
        return datetime.strptime(f"{date} {time_ or '00:00:00'}", "%m/%d/%y %H:%M:%S").isoformat()
    except ValueError:
        return None


def _ndpi(metadata: FileMetadata, tif: Any) -> None:
    metadata.format = "ndpi"
    tags = tif.ndpi_tags or {}
    metadata.instrument = InstrumentInfo(
        manufacturer="Hamamatsu", model=text(tags.get("Model")), serial_number=text(tags.get("ScannerSerialNumber"))
    )
    magnification = positive(number(tags.get("Magnification")))
    metadata.objectives = [Objective(magnification=magnification)] if magnification else []
    metadata.image_count = len(tif.series)


def _stk(metadata: FileMetadata, tif: Any) -> None:
    metadata.format = "stk"
    info = tif.stk_metadata or {}
    planes = integer(info.get("NumberPlanes"))
    metadata.dimensions.z = planes
    metadata.plane_count = planes
    unit = str(info.get("CalibrationUnits") or "")
    if "micron" in unit or "µm" in unit or unit.strip() == "um":
        metadata.pixel_size_um = PixelSize(x=positive(number(info.get("XCalibration"))),
                                           y=positive(number(info.get("YCalibration"))))  # fmt: skip
    metadata.software = f"MetaMorph {text(info.get('Version'))}" if info.get("Version") else "MetaMorph"
    metadata.camera = CameraInfo(model=text(info.get("CameraChipName")),
                                 exposure_ms=positive(number(info.get("Exposure"))),
                                 binning=text(info.get("CameraBin")))  # fmt: skip
    stage = info.get("StagePosition")
    if stage is not None and len(stage):
        metadata.stage = StagePosition(x_um=number(stage[0][0]), y_um=number(stage[0][1]))
    when = info.get("DatetimeCreated")
    if when is not None and len(when):
        metadata.acquisition_date = iso_date(str(when[0]))


def _fluoview(metadata: FileMetadata, tif: Any) -> None:
    metadata.format = "fluoview-tiff"
    info = tif.fluoview_metadata or {}
    metadata.instrument = InstrumentInfo(manufacturer="Olympus", model="FluoView")
    for name, size, resolution, unit in info.get("Dimensions") or []:
        axis = {"X": "x", "Y": "y", "Z": "z", "Ch": "c", "T": "t"}.get(str(name).strip())
        if axis:
            setattr(metadata.dimensions, axis, integer(size))
            if axis in ("x", "y", "z") and str(unit).strip() in ("um", "µm"):
                setattr(metadata.pixel_size_um, axis, positive(number(resolution)))
    metadata.software = "FluoView"


def _scanimage(metadata: FileMetadata, tif: Any) -> None:
    metadata.format = "scanimage-tiff"
    info = tif.scanimage_metadata or {}
    frame = info.get("FrameData") or {}
    version = ".".join(str(frame.get(key)) for key in ("SI.VERSION_MAJOR", "SI.VERSION_MINOR") if key in frame)
    metadata.software = f"ScanImage {version}" if version else "ScanImage"
    metadata.dimensions.z = integer(frame.get("SI.hStackManager.numSlices")) or metadata.dimensions.z
    channels = frame.get("SI.hChannels.channelSave")
    if isinstance(channels, list):
        metadata.dimensions.c = len(channels)


def _eer(metadata: FileMetadata, tif: Any) -> None:
    metadata.format = "eer"
    metadata.instrument = InstrumentInfo(manufacturer="Thermo Fisher Scientific")
    electron = metadata.electron_info()
    # electron.frames: the IFD count, from the whole-file check (agent.extract.registry), which
    # walks the chain without building thousands of tifffile pages
    electron.detector = "Falcon (EER)"
    info = getattr(tif, "eer_metadata", None)
    if isinstance(info, str) and "exposureTime" in info:
        from agent.extract.values import parse_xml

        root = parse_xml(info)
        values = {item.get("name"): item.text for item in root.iter("item")}
        electron.exposure_ms = positive(scaled(number(values.get("exposureTime")), 1e3))
        metadata.acquisition_date = iso_date(values.get("timestamp"))
    metadata.plane_count = electron.frames

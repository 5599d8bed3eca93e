"""Thermo Fisher EPU: per-image ``MicroscopeImage`` XML sidecars (GridSquare, FoilHole,
Data) and the ``EpuSession.dm`` session file, both DataContract XML, read with lxml.

A Data XML belongs to its movie (``<name>.xml`` with ``<name>.mrc/.tiff/.eer/.jpg`` and
``<name>_Fractions.*``): together they are one unit, the XML its anchor. Values are read
by element path from an allow-list, plus the allow-listed ``CustomData`` keys (dose,
detector's commercial name); never the computer name, storage folders or paths.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from agent.extract.model import FileMetadata, InstrumentInfo, PixelSize, StagePosition
from agent.extract.values import integer, iso_date, local_name, number, parse_xml, positive, scaled, text

MAX_EPU_XML_BYTES = 64 << 20
_CUSTOM_KEYS = ("DoseOnCamera", "DoseRate", "Dose", "DetectorCommercialName", "AppliedDefocus", "SuperResolutionFactor")


def _child(element: etree._Element | None, *names: str) -> etree._Element | None:
    for name in names:
        if element is None:
            return None
        element = next((child for child in element if local_name(child) == name), None)
    return element


def _value(element: etree._Element | None, *names: str) -> str | None:
    found = _child(element, *names)
    return None if found is None else found.text


class EpuExtractor:
    name = "epu"

    def accepts(self, head: bytes, path: Path) -> bool:
        if b"<MicroscopeImage" in head and b"Fei.SharedObjects" in head:
            return True
        return b"<EpuSessionXml" in head or (path.name == "EpuSession.dm" and head.lstrip().startswith(b"<"))

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        if path.stat().st_size > MAX_EPU_XML_BYTES:
            raise ValueError("EPU XML larger than 64 MiB; not parsed")
        root = parse_xml(path.read_bytes())
        if local_name(root) == "EpuSessionXml":
            _apply_session(metadata, root)
        elif local_name(root) == "MicroscopeImage":
            metadata.format = "epu-xml"
            metadata.media_type = "application/xml"
            apply_microscope_image(metadata, root)
        else:
            raise ValueError(f"not an EPU file (root element {local_name(root)})")
        return metadata


def _custom(root: etree._Element) -> dict[str, str]:
    found: dict[str, str] = {}
    custom = _child(root, "CustomData")
    for pair in custom if custom is not None else []:
        key, value = _value(pair, "Key"), _value(pair, "Value")
        if key in _CUSTOM_KEYS and value is not None:
            found[key] = value
    return found


def apply_microscope_image(metadata: FileMetadata, root: etree._Element) -> None:
    data = _child(root, "microscopeData")
    acquisition = _child(data, "acquisition")
    optics = _child(data, "optics")
    camera = _child(acquisition, "camera")
    custom = _custom(root)
    metadata.acquisition_date = iso_date(_value(acquisition, "acquisitionDateTime"))
    software, version = (
        text(_value(data, "core", "ApplicationSoftware")),
        text(_value(data, "core", "ApplicationSoftwareVersion")),
    )
    metadata.software = " ".join(part for part in (software, version) if part) or None
    metadata.instrument = InstrumentInfo(
        manufacturer="Thermo Fisher Scientific",
        model=text(_value(data, "instrument", "InstrumentModel")),
        serial_number=text(_value(data, "instrument", "InstrumentID")),
    )
    electron = metadata.electron_info()
    electron.accelerating_voltage_kv = positive(scaled(number(_value(data, "gun", "AccelerationVoltage")), 1e-3))
    electron.magnification = positive(number(_value(optics, "TemMagnification", "NominalMagnification")))
    electron.camera_length_mm = positive(scaled(number(_value(optics, "Cameralength")), 1e3))
    electron.spot_size = positive(number(_value(optics, "SpotIndex")))
    mode, submode = text(_value(optics, "ColumnOperatingMode")), text(_value(optics, "ColumnOperatingTemSubMode"))
    electron.mode = f"{mode} {submode}" if mode == "TEM" and submode else mode
    name = text(_value(camera, "Name"))
    commercial = text(custom.get("DetectorCommercialName"))
    electron.detector = f"{commercial} ({name})" if commercial and name else commercial or name
    electron.exposure_ms = positive(scaled(number(_value(camera, "ExposureTime")), 1e3))
    electron.dose_e_per_a2 = positive(number(custom.get("DoseOnCamera")))
    electron.dose_rate = positive(number(custom.get("DoseRate")))
    applied = number(custom.get("AppliedDefocus"))
    electron.defocus_um = scaled(applied, 1e6) if applied is not None else None
    fractions = _child(camera, "CameraSpecificInput")
    for pair in fractions if fractions is not None else []:
        if _value(pair, "Key") == "FractionationSettings":
            electron.frames = integer(_value(pair, "Value", "NumberOffractions"))
    scale = _child(root, "SpatialScale", "pixelSize")
    size_x = positive(number(_value(scale, "x", "numericValue")))
    size_y = positive(number(_value(scale, "y", "numericValue")))
    electron.pixel_size_nm = PixelSize(x=scaled(size_x, 1e9), y=scaled(size_y, 1e9))
    metadata.pixel_size_um = PixelSize(x=scaled(size_x, 1e6), y=scaled(size_y, 1e6))
    width, height = integer(_value(camera, "ReadoutArea", "width")), integer(_value(camera, "ReadoutArea", "height"))
    metadata.dimensions.x, metadata.dimensions.y = width or None, height or None
    position = _child(data, "stage", "Position")
    radians_to_degrees = 57.29577951308232
    electron.stage = StagePosition(
        x_um=scaled(number(_value(position, "X")), 1e6),
        y_um=scaled(number(_value(position, "Y")), 1e6),
        z_um=scaled(number(_value(position, "Z")), 1e6),
        alpha_deg=scaled(number(_value(position, "A")), radians_to_degrees),
        beta_deg=scaled(number(_value(position, "B")), radians_to_degrees),
    )


def _apply_session(metadata: FileMetadata, root: etree._Element) -> None:
    metadata.format = "epu-session"
    metadata.media_type = "application/xml"
    assembly = root.get("{http://schemas.microsoft.com/2003/10/Serialization/}Assembly") or ""
    version = next((part.split("=", 1)[1] for part in assembly.split(", ") if part.startswith("Version=")), None)
    metadata.software = f"EPU {text(version)}" if text(version) else "EPU"
    dates = sorted(filter(None, (iso_date(element.text) for element in root.iter()
                                 if local_name(element) in ("StartDateTime", "acquisitionDateTime"))))  # fmt: skip
    metadata.acquisition_date = dates[0] if dates else None
    squares = [element for element in root.iter() if local_name(element) == "FileName"
               and (element.text or "").split("\\")[-1].startswith("GridSquare_")]  # fmt: skip
    metadata.image_count = len(squares) or None
    electron = metadata.electron_info()
    exposures = [number(element.text) for element in root.iter() if local_name(element) == "ExposureTime"]
    data_exposure = next((value for value in reversed(exposures) if value), None)
    electron.exposure_ms = positive(scaled(data_exposure, 1e3))
    detectors = [text(element.text) for element in root.iter()
                 if local_name(element) == "Name" and etree.QName(element).namespace
                 and "Fei.Applications.Common.Omp.Interface" in (etree.QName(element).namespace or "")]  # fmt: skip
    electron.detector = next((name for name in detectors if name), None)

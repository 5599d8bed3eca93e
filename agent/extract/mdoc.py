"""SerialEM ``.mdoc`` autodoc files (text), written here (the format is SerialEM's
documented "autodoc": ``key = value`` lines in ``[section = n]`` blocks).

``<stack>.mdoc`` belongs to ``<stack>`` (``TS_01.mrc.mdoc`` to ``TS_01.mrc``): one unit,
the stack its member. Keys are read from an allow-list: never ``SubFramePath``,
``ImageFile`` paths or free-text titles except the "Digitized on <microscope>" line.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.extract.model import Dimensions, FileMetadata, InstrumentInfo, PixelSize
from agent.extract.values import integer, iso_date, number, positive, scaled, text

MAX_MDOC_BYTES = 32 << 20
_SECTION = re.compile(r"^\[(\w+)\s*=\s*(.*)\]\s*$")
_DIGITIZED = re.compile(r"SerialEM:\s*Digitized on\s+(.+?)\s{2,}(\d{1,2}-\w{3}-\d{2}\s+[\d:]+)")
_KEYS = ("PixelSpacing", "ImageSize", "DataMode", "TiltAngle", "Magnification", "ExposureDose", "Defocus",
         "ExposureTime", "SpotSize", "DateTime", "Voltage", "CameraLength", "CameraIndex", "NumSubFrames", "Binning",
         "StagePosition", "StageZ", "TargetDefocus")  # fmt: skip


class MdocExtractor:
    name = "serialem-mdoc"

    def accepts(self, head: bytes, path: Path) -> bool:
        return path.suffix.lower() == ".mdoc"

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        if path.stat().st_size > MAX_MDOC_BYTES:
            raise ValueError("mdoc larger than 32 MiB; not parsed")
        metadata.format = "serialem-mdoc"
        metadata.media_type = "text/plain"
        header: dict[str, str] = {}
        sections: list[dict[str, str]] = []
        current = header
        for line in path.read_text("latin-1").splitlines():
            line = line.strip()
            section = _SECTION.match(line)
            if section and section.group(1) in ("ZValue", "FrameSet", "MontSection"):
                current = {}
                sections.append(current)
                continue
            if section and section.group(1) == "T":
                digitized = _DIGITIZED.search(section.group(2))
                if digitized:
                    metadata.instrument = InstrumentInfo(model=text(digitized.group(1)))
                    metadata.acquisition_date = metadata.acquisition_date or iso_date(
                        " ".join(digitized.group(2).split()).replace(" ", "  ", 1)
                    )
                continue
            key, _, value = line.partition("=")
            if key.strip() in _KEYS:
                current[key.strip()] = value.strip()
        _apply(metadata, header, sections)
        return metadata


def _apply(metadata: FileMetadata, header: dict[str, str], sections: list[dict[str, str]]) -> None:
    first = sections[0] if sections else {}
    size = [integer(part) for part in header.get("ImageSize", "").split()]
    metadata.dimensions = Dimensions(x=size[0] if size else None, y=size[1] if len(size) > 1 else None,
                                     z=len(sections) or None)  # fmt: skip
    metadata.software = "SerialEM"
    electron = metadata.electron_info()
    spacing = positive(number(header.get("PixelSpacing") or first.get("PixelSpacing")))
    electron.pixel_size_nm = PixelSize(x=scaled(spacing, 0.1), y=scaled(spacing, 0.1))
    metadata.pixel_size_um = PixelSize(x=scaled(spacing, 1e-4), y=scaled(spacing, 1e-4))
    electron.magnification = positive(number(first.get("Magnification")))
    electron.accelerating_voltage_kv = positive(number(first.get("Voltage")))
    electron.spot_size = positive(number(first.get("SpotSize")))
    electron.exposure_ms = positive(scaled(number(first.get("ExposureTime")), 1e3))
    electron.defocus_um = number(first.get("Defocus"))
    electron.frames = integer(first.get("NumSubFrames"))
    doses = [number(section.get("ExposureDose")) for section in sections]
    total = sum(dose for dose in doses if dose)
    electron.dose_e_per_a2 = float(f"{total:.6g}") if total else None
    angles = [angle for angle in (number(section.get("TiltAngle")) for section in sections) if angle is not None]
    electron.tilt_angles_deg = [float(f"{angle:.4g}") for angle in angles]
    electron.mode = "TEM tilt series" if len(angles) > 1 else None
    date = iso_date(first.get("DateTime"))
    metadata.acquisition_date = date or metadata.acquisition_date
    metadata.plane_count = len(sections) or None

"""Nikon ND2 (NIS-Elements), read with the ``nd2`` library (BSD) through its documented
metadata API (``sizes``, ``voxel_size()``, ``metadata``, ``text_info``); pixels never decoded.

From ``text_info`` only the date, the application version and the "Microscope:" line are
read: its author, description and sample fields are free text and may name people.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent.extract.model import Channel, Dimensions, FileMetadata, InstrumentInfo, Objective, PixelSize
from agent.extract.values import integer, iso_date, number, positive, text

ND2_MAGIC = b"\xda\xce\xbe\x0a"
LEGACY_MAGIC = b"\x00\x00\x00\x0cjP  "
_MICROSCOPE_LINE = re.compile(r"^\s*Microscope:\s*(.+?)\s*$", re.MULTILINE)
_AXES = {"X": "x", "Y": "y", "Z": "z", "C": "c", "T": "t", "P": "p"}


class Nd2Extractor:
    name = "nd2"

    def accepts(self, head: bytes, path: Path) -> bool:
        return head.startswith(ND2_MAGIC) or (head.startswith(LEGACY_MAGIC) and path.suffix.lower() == ".nd2")

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        import nd2

        with nd2.ND2File(path) as handle:
            apply_nd2(metadata, handle)
        return metadata


def apply_nd2(metadata: FileMetadata, handle: Any) -> None:
    """Fill *metadata* from an open ``nd2.ND2File`` (or anything with its metadata API)."""
    metadata.format = "nd2"
    metadata.media_type = "image/nd2"
    sizes: dict[str, int] = dict(handle.sizes)
    metadata.dimensions = Dimensions(**{_AXES[axis]: int(size) for axis, size in sizes.items() if axis in _AXES})
    metadata.dimension_order = "".join(reversed([axis for axis in sizes if axis in _AXES])) or None
    metadata.pixel_type = str(handle.dtype)
    voxel = handle.voxel_size()
    metadata.pixel_size_um = PixelSize(
        x=positive(number(voxel.x)), y=positive(number(voxel.y)), z=positive(number(voxel.z))
    )
    info: dict[str, Any] = dict(handle.text_info or {})
    metadata.acquisition_date = iso_date(info.get("date"))
    version = text(info.get("appVersion"))
    metadata.software = f"NIS-Elements {version}" if version else None
    found = next((match for key in ("capturing", "description") if (match := _MICROSCOPE_LINE.search(
        str(info.get(key) or "")))), None)  # fmt: skip
    metadata.instrument = InstrumentInfo(manufacturer="Nikon", model=text(found.group(1)) if found else None)
    channels = list(getattr(handle.metadata, "channels", None) or [])
    metadata.channels = [
        Channel(
            name=text(channel.channel.name),
            emission_nm=positive(number(channel.channel.emissionLambdaNm)),
            excitation_nm=positive(number(channel.channel.excitationLambdaNm)),
        )
        for channel in channels
    ]
    objectives: list[Objective] = []
    for channel in channels:
        microscope = channel.microscope
        objective = Objective(
            model=text(microscope.objectiveName),
            magnification=positive(number(microscope.objectiveMagnification)),
            numerical_aperture=positive(number(microscope.objectiveNumericalAperture)),
        )
        if any(objective.model_dump().values()) and objective not in objectives:
            objectives.append(objective)
    metadata.objectives = objectives
    metadata.plane_count = integer(getattr(handle.attributes, "sequenceCount", None))

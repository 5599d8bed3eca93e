"""Leica LIF (LAS X / LAS AF): the XML header, read with liffile (BSD); pixels never decoded.

Every image in the file is listed in ``images`` (dimensions including λ/Λ spectral sweeps,
voxel sizes, date); the first image's settings fill the file-level fields. Only the
objective, stand, system and serial attributes of the acquisition settings are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.extract.model import Channel, Dimensions, FileMetadata, Image, InstrumentInfo, Objective, PixelSize
from agent.extract.values import iso_date, number, positive, scaled, text

LIF_MAGIC = b"\x70\x00\x00\x00"
_AXES = {"X": "x", "Y": "y", "Z": "z", "C": "c", "T": "t", "M": "m", "S": "s", "λ": "spectral", "Λ": "spectral"}
_SPATIAL = {"X": "x", "Y": "y", "Z": "z"}
_SETTINGS = ("ATLConfocalSettingDefinition", "ATLCameraSettingDefinition")


class LifExtractor:
    name = "lif"

    def accepts(self, head: bytes, path: Path) -> bool:
        return head.startswith(LIF_MAGIC) and head[8:9] == b"\x2a"

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        import liffile

        with liffile.LifFile(path) as lif:
            metadata.format = "lif"
            metadata.media_type = "application/x-leica-lif"
            if lif.datetime is not None:
                metadata.acquisition_date = lif.datetime.isoformat()
            images = list(lif.images)
            metadata.image_count = len(images)
            metadata.images = [_image(image) for image in images]
            if images:
                _apply_first(metadata, images[0])
        return metadata


def _image(image: Any) -> Image:
    sizes: dict[str, int] = dict(image.sizes)
    dimensions = Dimensions(**{_AXES[axis]: size for axis, size in sizes.items() if axis in _AXES})
    if dimensions.c is None and "C" not in sizes:
        dimensions.c = len(list(image.xml_element.iter("ChannelDescription"))) or None
    steps: dict[str, float | None] = {}
    for axis, field in _SPATIAL.items():
        values = image.coords.get(axis)
        if values is not None and len(values) > 1:
            steps[field] = positive(scaled(number(abs(float(values[1]) - float(values[0]))), 1e6))
    timestamps = image.timestamps
    return Image(
        name=text(image.name),
        dimensions=dimensions,
        pixel_size_um=PixelSize(**steps),
        pixel_type=str(image.dtype),
        acquisition_date=iso_date(str(timestamps[0])) if timestamps is not None and len(timestamps) else None,
    )


def _apply_first(metadata: FileMetadata, image: Any) -> None:
    first = metadata.images[0]
    metadata.dimensions = first.dimensions.model_copy()
    metadata.pixel_size_um = first.pixel_size_um.model_copy()
    metadata.pixel_type = first.pixel_type
    metadata.dimension_order = "".join(reversed([axis for axis in image.dims if axis in _AXES])) or None
    element = image.xml_element
    setting = next((found for tag in _SETTINGS for found in element.iter(tag)), None)
    hardware = next((found for found in element.iter("Attachment") if found.get("Name") == "HardwareSetting"), None)
    if hardware is not None:
        metadata.software = text(hardware.get("Software"))
    if setting is not None:
        metadata.instrument = InstrumentInfo(
            manufacturer="Leica Microsystems",
            model=text(setting.get("MicroscopeModel")),
            system=text(hardware.get("SystemTypeName")) if hardware is not None else None,
            serial_number=text(setting.get("SystemSerialNumber")),
        )
        metadata.objectives = [
            Objective(
                model=text(setting.get("ObjectiveName")),
                magnification=positive(number(setting.get("Magnification"))),
                numerical_aperture=positive(number(setting.get("NumericalAperture"))),
                immersion=text(setting.get("Immersion")),
            )
        ]
    # LIF names a channel by its look-up table (its display colour); no dye or detector is stated.
    metadata.channels = [Channel(name=text(channel.get("LUTName"))) for channel in element.iter("ChannelDescription")]

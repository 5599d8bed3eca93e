"""Zeiss CZI (ZEN): the metadata XML segment, read with czifile (BSD); pixels never decoded.

Only the file header and the metadata segment are read. Fields come from an allow-list:
``Information/Document/UserName`` and the document's name and comments are never read.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from agent.extract.model import Channel, Dimensions, FileMetadata, Image, InstrumentInfo, Objective, PixelSize
from agent.extract.values import integer, iso_date, number, parse_xml, positive, scaled, text

CZI_MAGIC = b"ZISRAWFILE"
_DIMENSIONS = {"x": "SizeX", "y": "SizeY", "z": "SizeZ", "c": "SizeC", "t": "SizeT", "s": "SizeS", "m": "SizeM",
               "h": "SizeH"}  # fmt: skip
NANOSECONDS_PER_MS = 1e6


class CziExtractor:
    name = "czi"

    def accepts(self, head: bytes, path: Path) -> bool:
        return head.startswith(CZI_MAGIC)

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        import czifile

        with czifile.CziFile(str(path), detectmosaic=False) as czi:
            xml = czi.metadata(raw=True)
        if not xml:
            raise ValueError("CZI has no metadata segment")
        metadata.format = "czi"
        metadata.media_type = "image/czi"
        apply_czi_xml(metadata, parse_xml(xml))
        return metadata


def apply_czi_xml(metadata: FileMetadata, root: etree._Element) -> None:
    information = root.find("Metadata/Information")
    if information is None:
        raise ValueError("CZI metadata has no Information block")
    image = information.find("Image")
    if image is None:
        image = etree.Element("Image")
    metadata.software = " ".join(
        part for part in (text(information.findtext("Application/Name")),
                          text(information.findtext("Application/Version"))) if part
    ) or None  # fmt: skip
    metadata.acquisition_date = iso_date(image.findtext("AcquisitionDateAndTime")) or iso_date(
        information.findtext("Document/CreationDate")
    )
    metadata.dimensions = Dimensions(**{axis: integer(image.findtext(tag)) for axis, tag in _DIMENSIONS.items()})
    metadata.pixel_type = text(image.findtext("PixelType"))
    metadata.dimension_order = "".join(
        axis.upper() for axis, tag in _DIMENSIONS.items() if (integer(image.findtext(tag)) or 1) > 1
    ) or None  # fmt: skip
    distances = {
        element.get("Id"): positive(scaled(number(element.findtext("Value")), 1e6))
        for element in root.iterfind("Metadata/Scaling/Items/Distance")
    }
    metadata.pixel_size_um = PixelSize(x=distances.get("X"), y=distances.get("Y"), z=distances.get("Z"))
    metadata.channels = [
        channel for element in image.iterfind("Dimensions/Channels/Channel") if (channel := _channel(element))
    ]
    metadata.images = [
        Image(name=text(scene.get("Name")) or f"scene {scene.get('Index')}")
        for scene in image.iterfind("Dimensions/S/Scenes/Scene")
    ]
    _apply_instrument(metadata, information)


def _channel(element: etree._Element) -> Channel | None:
    exposure = number(element.findtext("ExposureTime"))
    channel = Channel(
        name=text(element.get("Name")),
        excitation_nm=positive(number(element.findtext("ExcitationWavelength"))),
        emission_nm=positive(number(element.findtext("EmissionWavelength"))),
        fluorophore=text(element.findtext("Fluor")),
        acquisition_mode=text(element.findtext("AcquisitionMode")),
        exposure_ms=scaled(exposure, 1 / NANOSECONDS_PER_MS),
    )
    return channel if any(channel.model_dump().values()) else None


def _apply_instrument(metadata: FileMetadata, information: etree._Element) -> None:
    instrument = information.find("Instrument")
    if instrument is None:
        return
    microscope = instrument.find("Microscopes/Microscope")
    if microscope is not None:
        metadata.instrument = InstrumentInfo(
            manufacturer=text(microscope.findtext("Manufacturer/Manufacturer")) or "Carl Zeiss",
            model=text(microscope.get("Name")) or text(microscope.findtext("Manufacturer/Model")),
            serial_number=text(microscope.findtext("Manufacturer/SerialNumber")),
            system=text(microscope.findtext("System")),
        )
    used = {ref.get("Id") for ref in information.iterfind("Image/ObjectiveSettings/ObjectiveRef")}
    objectives = list(instrument.iterfind("Objectives/Objective"))
    chosen = [objective for objective in objectives if objective.get("Id") in used] or objectives
    metadata.objectives = [
        Objective(
            model=text(objective.get("Name")) or text(objective.findtext("Manufacturer/Model")),
            magnification=positive(number(objective.findtext("NominalMagnification"))),
            numerical_aperture=positive(number(objective.findtext("LensNA"))),
            immersion=text(objective.findtext("Immersion")),
        )
        for objective in chosen
    ]

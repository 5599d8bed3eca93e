"""OME-XML (standalone, companion, or a TIFF's ImageDescription) into normalised metadata."""

from __future__ import annotations

import warnings
from typing import Any

from lxml import etree

from agent.extract.model import Channel, Dimensions, FileMetadata, InstrumentInfo, Objective, PixelSize
from agent.extract.units import to_micrometres, to_nanometres

# Elements we do not normalise are pruned before ome-types builds its models:
# StructuredAnnotations can hold megabytes of vendor metadata (a whole CZI header in
# the Zeiss sample), and an acquisition with 10,000 planes has 10,000 Plane and
# TiffData elements. Fileset names are collected from the UUID elements first.
# Measured: Zeiss sample 60 -> 10 ms; 10,000-plane OME-XML 6.2 s -> see docs/performance.md.
_PRUNED = {"StructuredAnnotations", "Plane", "TiffData"}
# Channels described per image; a (hostile or broken) file declaring more is summarised by
# its first ones with a warning: 150,000 channels cost 47 s and 479 MB before this cap.
MAX_CHANNELS = 512
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True)


def _unit(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(getattr(value, "value", value)).strip()
    return text or None


def prune_ome_xml(xml: str | bytes) -> tuple[bytes, list[str], int]:
    """Drop elements we do not normalise, and channels beyond ``MAX_CHANNELS`` per image.

    Returns the smaller document, the fileset names and how many channels were dropped.
    One pass, linear in the document's size.
    """
    root = etree.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml, parser=_PARSER)
    names: set[str] = set()
    doomed = []
    channels_seen: dict[Any, int] = {}
    dropped_channels = 0
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        local = etree.QName(element).localname
        if local == "UUID" and element.get("FileName"):
            names.add(element.get("FileName"))
        elif local in _PRUNED:
            doomed.append(element)
        elif local == "Channel":
            parent = element.getparent()
            count = channels_seen.get(parent, 0) + 1
            channels_seen[parent] = count
            if count > MAX_CHANNELS:
                doomed.append(element)
                dropped_channels += 1
    for element in doomed:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    return etree.tostring(root), sorted(names), dropped_channels


def parse_ome_xml(xml: str | bytes) -> tuple[Any, list[str], int]:
    """Parse OME-XML without schema validation (real files often deviate slightly)."""
    from ome_types import from_xml  # on first use: its models cost every start-up about 0.25 s

    pruned, fileset, dropped_channels = prune_ome_xml(xml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_xml(pruned.decode("utf-8"), validate=False), fileset, dropped_channels


def apply_ome(metadata: FileMetadata, xml: str | bytes) -> FileMetadata:
    """Fill *metadata* from an OME-XML document (header-only: pixels are never touched)."""
    ome, fileset_names, dropped_channels = parse_ome_xml(xml)
    if dropped_channels:
        metadata.warnings.append(
            f"OME-XML describes more than {MAX_CHANNELS} channels per image; the first {MAX_CHANNELS} are summarised"
        )
    if ome.binary_only is not None:
        metadata.companion = ome.binary_only.metadata_file
        metadata.fileset = [ome.binary_only.metadata_file]
        metadata.warnings.append(f"metadata is in {ome.binary_only.metadata_file} (BinaryOnly)")
        return metadata
    metadata.image_count = len(ome.images)
    metadata.plane_count = sum(
        (image.pixels.size_z or 1) * (image.pixels.size_c or 1) * (image.pixels.size_t or 1) for image in ome.images
    )
    metadata.fileset = fileset_names
    if not ome.images:
        metadata.warnings.append("OME-XML describes no image")
        return metadata
    image = ome.images[0]
    pixels = image.pixels
    metadata.dimensions = Dimensions(
        x=pixels.size_x, y=pixels.size_y, z=pixels.size_z, c=pixels.size_c, t=pixels.size_t
    )
    metadata.dimension_order = _text(pixels.dimension_order)
    metadata.pixel_type = _text(pixels.type)
    metadata.pixel_size_um = PixelSize(
        x=to_micrometres(pixels.physical_size_x, _unit(pixels.physical_size_x_unit)),
        y=to_micrometres(pixels.physical_size_y, _unit(pixels.physical_size_y_unit)),
        z=to_micrometres(pixels.physical_size_z, _unit(pixels.physical_size_z_unit)),
    )
    if image.acquisition_date is not None:
        metadata.acquisition_date = image.acquisition_date.isoformat()
    if not dropped_channels and pixels.size_c and pixels.channels and len(pixels.channels) != pixels.size_c:
        samples = sum(channel.samples_per_pixel or 1 for channel in pixels.channels)
        if samples != pixels.size_c:
            metadata.warnings.append(
                f"OME-XML declares SizeC={pixels.size_c} but describes {len(pixels.channels)} channel(s)"
            )
    metadata.channels = [
        Channel(
            name=channel.name,
            excitation_nm=to_nanometres(channel.excitation_wavelength, _unit(channel.excitation_wavelength_unit)),
            emission_nm=to_nanometres(channel.emission_wavelength, _unit(channel.emission_wavelength_unit)),
        )
        for channel in pixels.channels
    ]
    instrument = _instrument_of(ome, image)
    if instrument is not None:
        microscope = instrument.microscope
        if microscope is not None:
            metadata.instrument = InstrumentInfo(
                manufacturer=_text(microscope.manufacturer),
                model=_text(microscope.model),
                serial_number=_text(microscope.serial_number),
            )
        metadata.objectives = [
            Objective(
                magnification=objective.nominal_magnification,
                numerical_aperture=objective.lens_na,
                immersion=_text(objective.immersion),
                model=_text(objective.model),
            )
            for objective in instrument.objectives
        ]
    if ome.creator:
        metadata.software = ome.creator
    return metadata


def _instrument_of(ome: Any, image: Any) -> Any:
    reference = getattr(image.instrument_ref, "id", None) if image.instrument_ref is not None else None
    for instrument in ome.instruments:
        if reference is None or instrument.id == reference:
            return instrument
    return None

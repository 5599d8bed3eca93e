"""OME-Zarr 0.4 (zarr v2: ``.zattrs``/``.zarray``) and 0.5 (zarr v3: ``zarr.json``), read as
plain JSON; chunks are never opened.

An OME-Zarr store is one image (or one plate), not thousands of files: the store's top
metadata file is the unit's anchor and is the only file extracted; its chunk files are
members. The reader follows a plate to its first well's first field for axes and scale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.extract.model import Channel, Dimensions, FileMetadata, Image, PixelSize, Plate
from agent.extract.units import to_micrometres
from agent.extract.values import integer, number, positive, text

MAX_JSON_BYTES = 16 << 20
ANCHOR_NAMES = (".zattrs", "zarr.json")
_UNIT_WORDS = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m", "angstrom": "Å"}


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        loaded = json.loads(handle.read(MAX_JSON_BYTES))
    return loaded if isinstance(loaded, dict) else {}


def ome_attributes(folder: Path) -> dict[str, Any]:
    """The OME block of a zarr group: v0.5 ``zarr.json`` attributes.ome, or v0.4 ``.zattrs``."""
    v3 = _load(folder / "zarr.json")
    if v3:
        attributes = v3.get("attributes") or {}
        return attributes.get("ome") or attributes
    return _load(folder / ".zattrs")


class OmeZarrExtractor:
    name = "ome-zarr"

    def accepts(self, head: bytes, path: Path) -> bool:
        return path.name in ANCHOR_NAMES and (b"multiscales" in head or b"plate" in head or b'"ome"' in head
                                               or b"attributes" in head)  # fmt: skip

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        folder = path.parent
        attributes = ome_attributes(folder)
        if not attributes.get("multiscales") and not attributes.get("plate"):
            raise ValueError("zarr group without OME multiscales or plate metadata")
        metadata.format = "ome-zarr"
        metadata.media_type = "application/x-ome-zarr"
        image_folder, image = folder, attributes
        plate = attributes.get("plate")
        if isinstance(plate, dict):
            metadata.plate = _plate(plate)
            metadata.software = f"OME-Zarr {plate.get('version') or attributes.get('version') or ''}".strip()
            image_folder, image = _first_field(folder, plate)
        multiscales = image.get("multiscales") or []
        if multiscales:
            _apply_multiscale(metadata, image_folder, multiscales[0], image)
        return metadata


def _plate(plate: dict[str, Any]) -> Plate:
    wells = plate.get("wells") or []
    return Plate(
        name=text(plate.get("name")),
        rows=len(plate.get("rows") or []) or None,
        columns=len(plate.get("columns") or []) or None,
        wells=len(wells) or None,
        fields=integer(plate.get("field_count")),
        acquisitions=len(plate.get("acquisitions") or []) or None,
    )


def _first_field(folder: Path, plate: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    for well in plate.get("wells") or []:
        well_path = str(well.get("path") or "")
        if not well_path or ".." in well_path.split("/"):
            continue
        images = (ome_attributes(folder / well_path).get("well") or {}).get("images") or []
        for image in images:
            image_path = str(image.get("path") or "")
            if image_path and ".." not in image_path.split("/"):
                field = folder / well_path / image_path
                return field, ome_attributes(field)
    return folder, {}


def _apply_multiscale(metadata: FileMetadata, folder: Path, multiscale: dict[str, Any], image: dict[str, Any]) -> None:
    version = multiscale.get("version") or image.get("version")
    if metadata.software is None:
        metadata.software = f"OME-Zarr {version}" if version else "OME-Zarr"
    axes = [axis if isinstance(axis, dict) else {"name": str(axis)} for axis in multiscale.get("axes") or []]
    names = [str(axis.get("name", "")).lower() for axis in axes]
    datasets = multiscale.get("datasets") or []
    level0 = datasets[0] if datasets else {}
    scale: list[Any] = []
    for transform in level0.get("coordinateTransformations") or multiscale.get("coordinateTransformations") or []:
        if transform.get("type") == "scale":
            scale = list(transform.get("scale") or [])
    sizes: dict[str, float | None] = {}
    for axis, name, value in zip(axes, names, scale, strict=False):
        if name in ("x", "y", "z") and axis.get("type", "space") == "space":
            unit = _UNIT_WORDS.get(str(axis.get("unit") or "micrometer"), str(axis.get("unit")))
            sizes[name] = positive(to_micrometres(number(value), unit))
    metadata.pixel_size_um = PixelSize(**sizes)
    path = str(level0.get("path") or "")
    shape = _shape(folder / path) if path and ".." not in path.split("/") else []
    metadata.dimensions = Dimensions(
        **{name: size for name, size in zip(names, shape, strict=False) if name in ("x", "y", "z", "c", "t")}
    )
    metadata.dimension_order = "".join(reversed([name.upper() for name in names])) or None
    metadata.images = [Image(name=text(multiscale.get("name")), dimensions=metadata.dimensions.model_copy(),
                             pixel_size_um=metadata.pixel_size_um.model_copy())]  # fmt: skip
    omero = image.get("omero") or {}
    metadata.channels = [
        Channel(name=text(channel.get("label")), emission_nm=positive(number(channel.get("emission_wavelength"))))
        for channel in omero.get("channels") or [] if isinstance(channel, dict)
    ]  # fmt: skip


def _shape(array_folder: Path) -> list[int]:
    v2 = _load(array_folder / ".zarray")
    found = v2.get("shape") if v2 else _load(array_folder / "zarr.json").get("shape")
    return [int(size) for size in found or [] if isinstance(size, int)]

"""The normalised metadata of one file, the same whatever its format.

Field meanings follow REMBI (Recommended Metadata for Biological Images) where it has
them: ``instrument`` ~ REMBI "Image acquisition / instrument attributes", ``objectives``
and ``channels`` ~ "imaging method / acquisition parameters", ``pixel_size_um`` ~
"image data / physical size". Sizes are always micrometres; wavelengths nanometres.
Unknown values are ``null``. The JSON Schema is in docs/schemas/metadata-1.schema.json.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

METADATA_VERSION = 1

Format = Literal["ome-tiff", "ome-xml", "imagej-tiff", "micromanager-tiff", "lsm-tiff", "tiff", "dicom", "generic"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimensions(_Model):
    x: int | None = None
    y: int | None = None
    z: int | None = None
    c: int | None = None
    t: int | None = None


class PixelSize(_Model):
    x: float | None = None
    y: float | None = None
    z: float | None = None


class InstrumentInfo(_Model):
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None


class Objective(_Model):
    magnification: float | None = None
    numerical_aperture: float | None = None
    immersion: str | None = None
    model: str | None = None


class Channel(_Model):
    name: str | None = None
    excitation_nm: float | None = None
    emission_nm: float | None = None


class DicomInfo(_Model):
    """Allow-listed DICOM attributes: no patient-identifying attribute is ever read into it."""

    modality: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    series_date: str | None = None
    series_time: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    device_serial_number: str | None = None
    station_name: str | None = None
    body_part: str | None = None
    pixel_spacing_mm: list[float] | None = None
    slice_thickness_mm: float | None = None
    number_of_frames: int | None = None
    instance_number: int | None = None
    transfer_syntax_uid: str | None = None


class FileMetadata(_Model):
    """Normalised, header-only metadata of one file."""

    metadata_version: int = METADATA_VERSION
    file_name: str
    format: Format = "generic"
    media_type: str = "application/octet-stream"
    size_bytes: int | None = None
    modified_at: str | None = None
    acquisition_date: str | None = None
    software: str | None = None
    dimensions: Dimensions = Field(default_factory=Dimensions)
    dimension_order: str | None = None
    pixel_type: str | None = None
    plane_count: int | None = None
    image_count: int | None = None
    pixel_size_um: PixelSize = Field(default_factory=PixelSize)
    instrument: InstrumentInfo = Field(default_factory=InstrumentInfo)
    objectives: list[Objective] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    fileset: list[str] = Field(default_factory=list, description="files of a multi-file OME dataset")
    companion: str | None = Field(default=None, description="the OME-XML file that holds this file's metadata")
    dicom: DicomInfo | None = None
    micromanager: dict[str, str | int | float | None] | None = None
    warnings: list[str] = Field(default_factory=list)


def metadata_json_schema() -> dict[str, object]:
    """JSON Schema of the normalised metadata (published as docs/schemas/metadata-1.schema.json)."""
    schema = FileMetadata.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"metadata-{METADATA_VERSION}.schema.json"
    return schema


if __name__ == "__main__":
    import json

    print(json.dumps(metadata_json_schema(), indent=2, ensure_ascii=False))

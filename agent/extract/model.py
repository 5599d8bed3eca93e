"""The normalised metadata of one file (or one multi-file unit), the same whatever its format.

Field meanings follow REMBI (Recommended Metadata for Biological Images) for light
microscopy, the 3DEM / EMDB / PDBx ``em_imaging`` categories for electron microscopy, and
DICOM's MR attributes for magnetic resonance; docs/metadata.md maps every field. Units are
fixed and named in the field: light-microscopy sizes in micrometres, wavelengths in
nanometres, EM pixel sizes in nanometres, voltages in kilovolts, times in milliseconds
(exposure, TE/TR/TI), field strength in tesla. Unknown values are ``null``.

Version 2 (docs/schemas/metadata-2.schema.json) adds the ``electron``, ``mr``, ``nifti``,
``images``, ``plate`` and ``unit`` sections and more dimensions to version 1; every
version-1 record is a valid version-2 record with those left empty (``load_metadata``).

Vendor headers carry personal data (user names, Windows profile paths, institutions):
readers fill these fields from allow-lists only, and no section holds free text copied
wholesale from a header.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

METADATA_VERSION = 2
READABLE_VERSIONS = (1, 2)

Format = Literal[
    "ome-tiff", "ome-xml", "imagej-tiff", "micromanager-tiff", "lsm-tiff", "tiff", "dicom", "generic",
    "czi", "lif", "nd2", "ome-zarr", "mrc", "dm3", "dm4", "tia-ser", "tia-emi", "velox-emd", "berkeley-emd",
    "epu-xml", "epu-session", "serialem-mdoc", "svs", "ndpi", "stk", "fluoview-tiff", "scanimage-tiff", "eer",
    "vsi", "paravision", "nifti", "sif",
]  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimensions(_Model):
    """Sizes along each axis; names follow CZI/OME: S scenes, M mosaic tiles, H phases
    (e.g. Airyscan detector elements), P stage positions, L spectral (λ/Λ) steps."""

    x: int | None = None
    y: int | None = None
    z: int | None = None
    c: int | None = None
    t: int | None = None
    s: int | None = None
    m: int | None = None
    h: int | None = None
    p: int | None = None
    spectral: int | None = None


class PixelSize(_Model):
    x: float | None = None
    y: float | None = None
    z: float | None = None


class InstrumentInfo(_Model):
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    system: str | None = Field(default=None, description="the system or stand around the model, e.g. 'TCS SP8'")


class Objective(_Model):
    magnification: float | None = None
    numerical_aperture: float | None = None
    immersion: str | None = None
    model: str | None = None


class Channel(_Model):
    name: str | None = None
    excitation_nm: float | None = None
    emission_nm: float | None = None
    fluorophore: str | None = None
    acquisition_mode: str | None = None
    exposure_ms: float | None = None


class StagePosition(_Model):
    x_um: float | None = None
    y_um: float | None = None
    z_um: float | None = None
    alpha_deg: float | None = None
    beta_deg: float | None = None


class CameraInfo(_Model):
    """The detector that recorded the image (light microscopy and spectroscopy cameras)."""

    model: str | None = None
    exposure_ms: float | None = None
    gain: float | None = None
    em_gain: float | None = None
    binning: str | None = None
    temperature_c: float | None = None
    sensor: str | None = Field(default=None, description="sensor size in pixels, e.g. '512x512'")
    cycle_time_ms: float | None = None
    wavelength_calibration: list[float] = Field(
        default_factory=list, description="polynomial coefficients from pixel to wavelength (nm), lowest order first"
    )


class ElectronInfo(_Model):
    """Electron-microscopy acquisition (3DEM ``em_imaging`` / ``em_image_recording``)."""

    accelerating_voltage_kv: float | None = None
    mode: str | None = Field(default=None, description="TEM, STEM, diffraction, EELS, SEM, ...")
    magnification: float | None = None
    camera_length_mm: float | None = None
    spot_size: float | None = None
    detector: str | None = None
    pixel_size_nm: PixelSize = Field(default_factory=PixelSize)
    exposure_ms: float | None = None
    dose_e_per_a2: float | None = Field(default=None, description="total dose, electrons per Å²")
    dose_rate: float | None = Field(default=None, description="as the instrument reports it (e.g. e/px/s)")
    dwell_time_us: float | None = None
    defocus_um: float | None = None
    frames: int | None = None
    tilt_angles_deg: list[float] = Field(default_factory=list)
    stage: StagePosition | None = None
    extended_header: str | None = Field(default=None, description="MRC extended header type, e.g. FEI1")


class MrInfo(_Model):
    """Magnetic-resonance acquisition (DICOM MR attributes)."""

    field_strength_t: float | None = None
    base_frequency_mhz: float | None = None
    method: str | None = None
    sequence: str | None = None
    echo_time_ms: float | None = None
    repetition_time_ms: float | None = None
    inversion_time_ms: float | None = None
    flip_angle_deg: float | None = None
    fov_mm: list[float] = Field(default_factory=list)
    matrix: list[int] = Field(default_factory=list)
    slice_thickness_mm: float | None = None
    slices: int | None = None
    averages: int | None = None
    repetitions: int | None = None


class NiftiInfo(_Model):
    version: int | None = None
    voxel_size: list[float] = Field(default_factory=list, description="pixdim in the header's spatial unit")
    spatial_unit: str | None = None
    time_unit: str | None = None
    repetition_time_ms: float | None = None
    description: str | None = None
    qform_code: int | None = None
    sform_code: int | None = None
    data_type: str | None = None


class Image(_Model):
    """One image of a file that holds several (a LIF's series, a CZI's scenes)."""

    name: str | None = None
    dimensions: Dimensions = Field(default_factory=Dimensions)
    pixel_size_um: PixelSize = Field(default_factory=PixelSize)
    pixel_type: str | None = None
    acquisition_date: str | None = None


class Plate(_Model):
    """High-content-screening layout (OME-Zarr plate, OME Plate)."""

    name: str | None = None
    rows: int | None = None
    columns: int | None = None
    wells: int | None = None
    fields: int | None = None
    acquisitions: int | None = None


class UnitInfo(_Model):
    """The multi-file unit this file belongs to (an OME-Zarr store, a ParaVision scan, ...)."""

    kind: str
    path: str = Field(description="the unit's anchor (its top folder or main file), relative to this file's folder")
    role: Literal["anchor", "member"]


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


class FileCompleteness(_Model):
    """Structural completeness of one file: is everything its headers declare inside it?"""

    state: Literal["whole", "truncated", "unknown"] = Field(
        description="whole: all it declares is present; truncated: declared bytes, planes or blocks are missing;"
        " unknown: the format declares nothing to check"
    )
    detail: str | None = Field(default=None, description="e.g. 'pixel data ends 62 bytes early', '238 of 240 IFDs'")
    declared: int | None = Field(default=None, description="what the file declares, in *unit*")
    found: int | None = Field(default=None, description="what is present, in *unit*")
    unit: str | None = Field(default=None, description="bytes, IFDs, subblocks, memory blocks, ...")
    extent_bytes: int | None = Field(default=None, description="where the farthest byte the file declares ends")


class Declaration(_Model):
    """What one file says about the acquisition it belongs to (dataset completeness)."""

    kind: Literal["dicom-acquisition", "micromanager", "zarr-array", "zarr-image", "paravision-scan"]
    group: str = Field(description="members of one acquisition share it (identifiers are digested, never stored)")
    expected: int = Field(description="how many *unit* the acquisition declares")
    contributes: int = Field(default=1, description="how many *unit* this file holds")
    unit: str = Field(description="instances, images, chunks, arrays, ...")
    scope: str | None = Field(
        default=None, description="folder (relative to this file's) whose files make up a zarr array or image"
    )


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
    images: list[Image] = Field(default_factory=list)
    plate: Plate | None = None
    camera: CameraInfo | None = None
    stage: StagePosition | None = Field(default=None, description="light microscopy: the first position's stage")
    electron: ElectronInfo | None = None
    mr: MrInfo | None = None
    nifti: NiftiInfo | None = None
    unit: UnitInfo | None = None
    fileset: list[str] = Field(default_factory=list, description="files of a multi-file OME dataset")
    companion: str | None = Field(default=None, description="the OME-XML file that holds this file's metadata")
    dicom: DicomInfo | None = None
    micromanager: dict[str, str | int | float | None] | None = None
    completeness: FileCompleteness | None = Field(default=None, description="structural completeness of the file")
    declares: list[Declaration] = Field(
        default_factory=list, description="what the file declares about its acquisition (see docs/architecture.md)"
    )
    warnings: list[str] = Field(default_factory=list)

    def electron_info(self) -> ElectronInfo:
        if self.electron is None:
            self.electron = ElectronInfo()
        return self.electron

    def mr_info(self) -> MrInfo:
        if self.mr is None:
            self.mr = MrInfo()
        return self.mr


def load_metadata(text: str | bytes) -> FileMetadata:
    """A stored record of any readable version as the current model; raises ``ValueError``."""
    metadata = FileMetadata.model_validate_json(text)
    if metadata.metadata_version not in READABLE_VERSIONS:
        raise ValueError(f"metadata version {metadata.metadata_version} is newer than this agent reads")
    return metadata


def metadata_json_schema() -> dict[str, object]:
    """JSON Schema of the normalised metadata (published as docs/schemas/metadata-2.schema.json)."""
    schema = FileMetadata.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"metadata-{METADATA_VERSION}.schema.json"
    return schema


if __name__ == "__main__":
    import json

    print(json.dumps(metadata_json_schema(), indent=2, ensure_ascii=False))

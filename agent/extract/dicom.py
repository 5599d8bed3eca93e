"""DICOM (pydicom): an allow-list of attributes, read before the pixel data.

Only the attributes named in ``ALLOWED`` are parsed at all (``specific_tags``), so no
patient-identifying attribute (name, id, birth date, address, ...) is ever read into
memory, let alone copied into sidecars, RO-Crate, logs or status.
"""

from __future__ import annotations

import warnings as warnings_module
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from agent.extract.model import DicomInfo, Dimensions, FileMetadata, InstrumentInfo, PixelSize

DICOM_MAGIC_OFFSET = 128
ALLOWED = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
    "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
    "AcquisitionDateTime", "SeriesNumber", "SeriesDescription", "Manufacturer", "ManufacturerModelName",
    "DeviceSerialNumber", "StationName", "BodyPartExamined", "PixelSpacing", "SliceThickness",
    "NumberOfFrames", "InstanceNumber", "Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
    "PixelRepresentation", "SharedFunctionalGroupsSequence", "SoftwareVersions",
]  # fmt: skip


def has_dicom_magic(head: bytes) -> bool:
    return head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


class DicomExtractor:
    name = "dicom"

    def accepts(self, head: bytes, path: Path) -> bool:
        return has_dicom_magic(head) or path.suffix.lower() in (".dcm", ".dicom")

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        metadata.media_type = "application/dicom"
        with path.open("rb") as stream:
            magic = has_dicom_magic(stream.read(DICOM_MAGIC_OFFSET + 4))
            stream.seek(0)
            try:
                dataset = pydicom.dcmread(stream, stop_before_pixels=True, specific_tags=ALLOWED, force=not magic)
            except InvalidDicomError as error:
                raise ValueError(f"not a DICOM file: {error}") from None
        with warnings_module.catch_warnings():
            # Invalid values are reported as per-file warnings below, not on stderr.
            warnings_module.simplefilter("ignore")
            return self._normalise(dataset, magic, metadata)

    def _normalise(self, dataset: Any, magic: bool, metadata: FileMetadata) -> FileMetadata:
        if not magic:
            metadata.warnings.append("no DICOM preamble/file meta header (read anyway)")
        warnings = metadata.warnings
        info = DicomInfo(
            modality=_text(dataset, "Modality", warnings),
            sop_class_uid=_text(dataset, "SOPClassUID", warnings),
            study_instance_uid=_text(dataset, "StudyInstanceUID", warnings),
            series_instance_uid=_text(dataset, "SeriesInstanceUID", warnings),
            sop_instance_uid=_text(dataset, "SOPInstanceUID", warnings),
            study_date=_text(dataset, "StudyDate", warnings),
            study_time=_text(dataset, "StudyTime", warnings),
            series_date=_text(dataset, "SeriesDate", warnings),
            series_time=_text(dataset, "SeriesTime", warnings),
            series_number=_integer(dataset, "SeriesNumber", warnings),
            series_description=_text(dataset, "SeriesDescription", warnings),
            manufacturer=_text(dataset, "Manufacturer", warnings),
            model=_text(dataset, "ManufacturerModelName", warnings),
            device_serial_number=_text(dataset, "DeviceSerialNumber", warnings),
            station_name=_text(dataset, "StationName", warnings),
            body_part=_text(dataset, "BodyPartExamined", warnings),
            pixel_spacing_mm=_spacing(dataset, warnings),
            slice_thickness_mm=_number(dataset, "SliceThickness", warnings),
            number_of_frames=_integer(dataset, "NumberOfFrames", warnings),
            instance_number=_integer(dataset, "InstanceNumber", warnings),
            transfer_syntax_uid=_transfer_syntax(dataset, warnings),
        )
        metadata.format = "dicom"
        metadata.dicom = info
        metadata.instrument = InstrumentInfo(
            manufacturer=info.manufacturer, model=info.model, serial_number=info.device_serial_number
        )
        frames = info.number_of_frames or 1
        metadata.dimensions = Dimensions(
            x=_integer(dataset, "Columns", warnings),
            y=_integer(dataset, "Rows", warnings),
            z=frames,
            c=_integer(dataset, "SamplesPerPixel", warnings),
            t=1,
        )
        metadata.plane_count = frames
        if info.pixel_spacing_mm and len(info.pixel_spacing_mm) == 2:
            row_mm, column_mm = info.pixel_spacing_mm
            thickness = info.slice_thickness_mm
            metadata.pixel_size_um = PixelSize(
                x=column_mm * 1000, y=row_mm * 1000, z=thickness * 1000 if thickness else None
            )
        metadata.acquisition_date = _acquisition_date(dataset, warnings)
        bits = _integer(dataset, "BitsAllocated", warnings)
        if bits:
            signed = _integer(dataset, "PixelRepresentation", warnings) == 1
            metadata.pixel_type = f"{'int' if signed else 'uint'}{bits}"
        software = _text(dataset, "SoftwareVersions", warnings)
        metadata.software = software
        return metadata


def _raw(dataset: Any, keyword: str, warnings: list[str]) -> Any:
    try:
        return dataset.get(keyword)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for malformed values
        warnings.append(f"DICOM {keyword}: unreadable value ({type(error).__name__})")
        return None


def _text(dataset: Any, keyword: str, warnings: list[str]) -> str | None:
    value = _raw(dataset, keyword, warnings)
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(item) for item in value)
    return str(value).strip() or None


def _number(dataset: Any, keyword: str, warnings: list[str]) -> float | None:
    value = _raw(dataset, keyword, warnings)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        warnings.append(f"DICOM {keyword}: not a number: {str(value)[:40]!r}")
        return None


def _integer(dataset: Any, keyword: str, warnings: list[str]) -> int | None:
    number = _number(dataset, keyword, warnings)
    return None if number is None else int(number)


def _spacing(dataset: Any, warnings: list[str]) -> list[float] | None:
    value = _raw(dataset, "PixelSpacing", warnings)
    if value is None:
        # Enhanced multi-frame objects keep it in the shared functional groups.
        try:
            value = dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError, KeyError):
            return None
    try:
        return [float(item) for item in value]
    except (TypeError, ValueError):
        warnings.append("DICOM PixelSpacing: not numbers")
        return None


def _transfer_syntax(dataset: Any, warnings: list[str]) -> str | None:
    meta = getattr(dataset, "file_meta", None)
    value = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if value is None:
        warnings.append("DICOM file meta has no TransferSyntaxUID")
    return str(value) if value else None


def _acquisition_date(dataset: Any, warnings: list[str]) -> str | None:
    stamp = _text(dataset, "AcquisitionDateTime", warnings)
    if stamp:
        return _iso(stamp[:8], stamp[8:])
    for date_key, time_key in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"),
                               ("StudyDate", "StudyTime")):  # fmt: skip
        date = _text(dataset, date_key, warnings)
        if date:
            return _iso(date, _text(dataset, time_key, warnings) or "")
    return None


def _iso(date: str, time: str) -> str | None:
    if len(date) != 8 or not date.isdigit():
        return None
    text = f"{date[:4]}-{date[4:6]}-{date[6:8]}"
    digits = time.split(".")[0]
    if len(digits) >= 4 and digits[:6].isdigit():
        seconds = digits[4:6] or "00"
        text += f"T{digits[:2]}:{digits[2:4]}:{seconds}"
    return text


GROUPING_TAGS = ["StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "StudyDate"]


def grouping_attributes(path: Path) -> dict[str, str] | None:
    """Study/series identity of a DICOM file, or ``None`` if it is not readable DICOM.

    Reads only the five grouping attributes (and the file meta), never patient data.
    """
    try:
        with path.open("rb") as stream:
            if not has_dicom_magic(stream.read(DICOM_MAGIC_OFFSET + 4)):
                return None
            stream.seek(0)
            with warnings_module.catch_warnings():
                warnings_module.simplefilter("ignore")
                dataset = pydicom.dcmread(stream, stop_before_pixels=True, specific_tags=GROUPING_TAGS)
    except (OSError, InvalidDicomError, ValueError, EOFError):
        return None
    ignored: list[str] = []
    study = _text(dataset, "StudyInstanceUID", ignored)
    series = _text(dataset, "SeriesInstanceUID", ignored)
    if not study or not series:
        return None
    attributes = {"study_instance_uid": study, "series_instance_uid": series}
    for key, keyword in (("modality", "Modality"), ("series_number", "SeriesNumber"), ("study_date", "StudyDate")):
        value = _text(dataset, keyword, ignored)
        if value:
            attributes[key] = value
    return attributes

"""DICOM (pydicom): an allow-list of attributes, read before the pixel data.

Only the attributes named in ``ALLOWED`` are parsed at all (``specific_tags``), so no
patient-identifying attribute (name, id, birth date, address, ...) is ever read into
memory, let alone copied into sidecars, RO-Crate, logs or status.

A corrupt header can still make an allowed attribute swallow the bytes that follow it
(a wrong length field), patient attributes included. So every value kept is checked
against its value representation (``VR_OF``: UI digits and dots up to 64 characters,
DA/TM/DT patterns, CS charset and length, LO/SH length and printable text, IS/DS/US
numbers) and dropped if it does not fit, with a warning that names the attribute, never
the value. pydicom's own validation is switched off for reading: its warnings and log
records quote values.
"""

from __future__ import annotations

import hashlib
import re
import warnings as warnings_module
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.extract.dicom_reader import NotDicomError, dcmread, elements_in_order, is_multi_value, uid_name
from agent.extract.model import Declaration, DicomInfo, Dimensions, FileMetadata, InstrumentInfo, PixelSize

DICOM_MAGIC_OFFSET = 128
MAX_DECLARED_INSTANCES = 1_000_000
ALLOWED = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
    "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
    "AcquisitionDateTime", "SeriesNumber", "SeriesDescription", "Manufacturer", "ManufacturerModelName",
    "DeviceSerialNumber", "StationName", "BodyPartExamined", "PixelSpacing", "SliceThickness",
    "NumberOfFrames", "InstanceNumber", "Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
    "PixelRepresentation", "SharedFunctionalGroupsSequence", "SoftwareVersions", "AcquisitionNumber",
    "ImagesInAcquisition", "NumberOfSlices", "NumberOfTimeSlices",
]  # fmt: skip

_UI = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_DA = re.compile(r"[0-9]{8}")
_TM = re.compile(r"[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,6})?)?)?")
_DT = re.compile(
    r"[0-9]{4}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,6})?)?)?)?)?)?(?:[+-][0-9]{4})?"
)
_CS = re.compile(r"[A-Z0-9 _]{1,16}")
_IS = re.compile(r" *[+-]?[0-9]{1,12} *")
_DS = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")


def _printable(text: str, limit: int) -> bool:
    return len(text) <= limit and all(char.isprintable() and char != "\\" for char in text)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "UI": lambda value: len(value) <= 64 and _UI.fullmatch(value) is not None,
    "DA": lambda value: _DA.fullmatch(value) is not None,
    "TM": lambda value: len(value) <= 16 and _TM.fullmatch(value) is not None,
    "DT": lambda value: len(value) <= 26 and _DT.fullmatch(value) is not None,
    "CS": lambda value: _CS.fullmatch(value) is not None,
    "IS": lambda value: len(value) <= 12 and _IS.fullmatch(value) is not None,
    "DS": lambda value: len(value) <= 16 and _DS.fullmatch(value) is not None,
    "US": lambda value: value.isdigit() and int(value) < 65536,
    "LO": lambda value: _printable(value, 64),
    "SH": lambda value: _printable(value, 16),
}
VR_OF = {
    "SOPClassUID": "UI", "SOPInstanceUID": "UI", "StudyInstanceUID": "UI", "SeriesInstanceUID": "UI",
    "TransferSyntaxUID": "UI", "Modality": "CS", "BodyPartExamined": "CS", "StudyDate": "DA",
    "SeriesDate": "DA", "AcquisitionDate": "DA", "StudyTime": "TM", "SeriesTime": "TM", "AcquisitionTime": "TM",
    "AcquisitionDateTime": "DT", "SeriesNumber": "IS", "NumberOfFrames": "IS", "InstanceNumber": "IS",
    "SeriesDescription": "LO", "Manufacturer": "LO", "ManufacturerModelName": "LO", "DeviceSerialNumber": "LO",
    "SoftwareVersions": "LO", "StationName": "SH", "PixelSpacing": "DS", "SliceThickness": "DS", "Rows": "US",
    "Columns": "US", "SamplesPerPixel": "US", "BitsAllocated": "US", "PixelRepresentation": "US",
    "AcquisitionNumber": "IS", "ImagesInAcquisition": "IS", "NumberOfSlices": "US", "NumberOfTimeSlices": "US",
}  # fmt: skip


def valid_value(keyword: str, value: object) -> bool:
    """Does every part of *value* fit the VR of *keyword*? (Unknown keywords never pass.)"""
    check = VALIDATORS.get(VR_OF.get(keyword, ""))
    if check is None:
        return False
    parts = list(value) if is_multi_value(value) or isinstance(value, list | tuple) else [value]
    if not parts or len(parts) > 16:
        return False
    for part in parts:
        text = part if isinstance(part, str) else str(part)
        if isinstance(part, bytes) or not check(text.strip(" ") if VR_OF[keyword] not in ("IS", "DS") else text):
            return False
    return True


def has_dicom_magic(head: bytes) -> bool:
    return head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


class DicomExtractor:
    name = "dicom"

    def accepts(self, head: bytes, path: Path) -> bool:
        return has_dicom_magic(head) or path.suffix.lower() in (".dcm", ".dicom")

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        metadata.media_type = "application/dicom"
        with warnings_module.catch_warnings(record=True) as caught:
            # pydicom's warnings may quote values: counted here, never shown.
            warnings_module.simplefilter("always")
            with path.open("rb") as stream:
                magic = has_dicom_magic(stream.read(DICOM_MAGIC_OFFSET + 4))
                stream.seek(0)
                try:
                    dataset = dcmread(stream, stop_before_pixels=True, specific_tags=ALLOWED, force=not magic)
                except NotDicomError:
                    raise ValueError("not a DICOM file") from None
                except Exception as error:  # noqa: BLE001 - messages of a corrupt parse may quote bytes
                    raise ValueError(f"unreadable DICOM header ({type(error).__name__})") from None
                if not elements_in_order(stream, dataset, DICOM_MAGIC_OFFSET + 4 if magic else 0):
                    _drop_free_text(dataset, metadata.warnings)
            result = self._normalise(dataset, magic, metadata)
        if caught:
            result.warnings.append(f"DICOM: the reader reported {len(caught)} problem(s) (values not shown)")
        return result

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
        declaration = _declaration(dataset, info, warnings)
        if declaration is not None:
            metadata.declares.append(declaration)
        return metadata


def _declaration(dataset: Any, info: DicomInfo, warnings: list[str]) -> Declaration | None:
    """How many instances this file's acquisition declares: ImagesInAcquisition (0020,1002);
    for PET and NM, NumberOfSlices (0054,0081) x NumberOfTimeSlices (0054,0101); an enhanced
    multi-frame object holds its whole acquisition in its frames."""
    if info.series_instance_uid is None:
        return None
    acquisition = _integer(dataset, "AcquisitionNumber", warnings)
    group = hashlib.sha256(f"{info.series_instance_uid}/{acquisition}".encode()).hexdigest()[:16]
    images = _integer(dataset, "ImagesInAcquisition", warnings)
    if images is None and info.modality in ("PT", "NM"):
        slices = _integer(dataset, "NumberOfSlices", warnings)
        images = slices * max(1, _integer(dataset, "NumberOfTimeSlices", warnings) or 1) if slices else None
        if info.modality == "NM" and (info.number_of_frames or 1) > 1:
            images = None  # NM frames are counted within one object
    if images is None and (info.number_of_frames or 1) > 1 and "Enhanced" in _class_name(info.sop_class_uid):
        images = 1
        group = hashlib.sha256(f"{info.sop_instance_uid}".encode()).hexdigest()[:16]
    if images is None or not 0 < images <= MAX_DECLARED_INSTANCES:
        return None
    return Declaration(kind="dicom-acquisition", group=group, expected=images, unit="instances")


#: VRs whose values are free text: any name fits them, a patient's too.
FREE_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})


def _drop_free_text(dataset: Any, warnings: list[str]) -> None:
    """A header whose elements repeat or come out of order is damaged: an attribute may hold
    another's value. Only values that their VR constrains (UIDs, dates, numbers) are kept."""
    for keyword, vr in VR_OF.items():
        if vr in FREE_TEXT_VRS and keyword in dataset:
            del dataset[keyword]
    warnings.append("DICOM: header elements repeated or out of order (damaged header); free-text values dropped")


def _class_name(uid: str | None) -> str:
    return uid_name(uid) if uid else ""


def _raw(dataset: Any, keyword: str, warnings: list[str]) -> Any:
    """The attribute's value if it fits its VR, else None (with a warning naming the attribute only)."""
    try:
        value = dataset.get(keyword)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for malformed values
        warnings.append(f"DICOM {keyword}: unreadable value ({type(error).__name__})")
        return None
    if value is None or value == "":
        return None
    if not valid_value(keyword, value):
        warnings.append(f"DICOM {keyword}: value does not fit its VR {VR_OF.get(keyword, '?')}; dropped")
        return None
    return value


def _text(dataset: Any, keyword: str, warnings: list[str]) -> str | None:
    value = _raw(dataset, keyword, warnings)
    if value is None or value == "":
        return None
    if is_multi_value(value):
        value = "\\".join(str(item) for item in value)
    return str(value).strip() or None


def _number(dataset: Any, keyword: str, warnings: list[str]) -> float | None:
    value = _raw(dataset, keyword, warnings)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        warnings.append(f"DICOM {keyword}: not a number; dropped")
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
        except Exception:  # noqa: BLE001 - absent, or a malformed sequence
            return None
        if not valid_value("PixelSpacing", value):
            warnings.append("DICOM PixelSpacing: value does not fit its VR DS; dropped")
            return None
    try:
        return [float(item) for item in value]
    except (TypeError, ValueError):
        warnings.append("DICOM PixelSpacing: not numbers")
        return None


def _transfer_syntax(dataset: Any, warnings: list[str]) -> str | None:
    meta = getattr(dataset, "file_meta", None)
    try:
        value = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    except Exception:  # noqa: BLE001 - a malformed file meta
        value = None
    if value is None:
        warnings.append("DICOM file meta has no TransferSyntaxUID")
        return None
    if not valid_value("TransferSyntaxUID", value):
        warnings.append("DICOM TransferSyntaxUID: value does not fit its VR UI; dropped")
        return None
    return str(value)


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
                dataset = dcmread(stream, stop_before_pixels=True, specific_tags=GROUPING_TAGS)
    except Exception:  # noqa: BLE001 - not readable DICOM: placed by folder instead
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

"""DICOM: is the pixel data all there?

pydicom reads the header up to the pixel data element; from there this module walks by
position. Native pixel data must fit in the file and hold what Rows x Columns x Samples
x Bits Allocated x Number of Frames declare; encapsulated (compressed) pixel data must
reach its sequence delimiter, item by item, without reading the fragments. Elements after
the pixel data (trailing padding, vendor tags) must fit too. An image whose file ends
before its pixel data is truncated; a non-image object (a report, a presentation state)
that parses to its end is whole.
"""

from __future__ import annotations

import struct
from typing import Any

from agent.extract.dicom_reader import NotDicomError, dcmread, uid_name
from agent.extract.model import FileCompleteness
from agent.extract.whole.source import Source, bytes_check, ends_early, truncated, unknown, whole

_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_ITEM, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
_UNDEFINED = 0xFFFFFFFF
_IMPLICIT = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
MAX_ITEMS = 10_000_000
_PIXEL_CLASSES = {"Segmentation Storage", "Parametric Map Storage", "Label Map Segmentation Storage"}


def check_dicom(source: Source) -> FileCompleteness:
    with source.path.open("rb") as handle:
        try:
            dataset = dcmread(handle, stop_before_pixels=True, force=True)
        except (NotDicomError, EOFError, struct.error) as error:
            return (
                truncated(f"DICOM header ends early ({type(error).__name__})") if _at_end(handle, source) else unknown()
            )
        except OSError as error:
            if error.errno is not None:
                raise  # a real read error, not pydicom meeting the end of the file
            return truncated("DICOM header ends early") if _at_end(handle, source) else unknown()
        except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError):
            return unknown("DICOM header unreadable")
        start = handle.tell()
    syntax = str(getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "") or "")
    if syntax in _DEFLATED:
        return unknown("deflated transfer syntax: the pixel data's extent is not declared")
    little, implicit = syntax != _BIG_ENDIAN, syntax == _IMPLICIT or (not syntax and _looks_implicit(source, start))
    head = _element_header(source, start, little, implicit)
    expected = _expected_pixel_bytes(dataset)
    if head is None:
        if start < source.size:
            return truncated("DICOM element header ends early", declared=start + 8, found=source.size, unit="bytes")
        if expected or _is_image(dataset):
            return truncated("pixel data missing: the file ends before it", declared=expected or None, found=0,
                             unit="bytes")  # fmt: skip
        if not len(dataset) and source.path.suffix.lower() in (".dcm", ".dicom") and source.size < 132:
            return truncated("DICOM preamble incomplete", declared=132, found=source.size, unit="bytes")
        return whole(unit="bytes") if len(dataset) else unknown()
    tag, length, value_at = head
    if tag not in _PIXEL_TAGS:
        return _rest(source, start, little, implicit)  # stopped at a later tag: no pixel data in this object
    if length == _UNDEFINED:
        return _encapsulated(source, value_at, little, dataset)
    if value_at + length > source.size:
        return ends_early("pixel data", value_at + length, source.size)
    if expected and length < expected:
        return truncated(
            f"pixel data holds {length} of {expected} bytes", declared=expected, found=length, unit="bytes"
        )
    return _rest(source, value_at + length, little, implicit)


def _at_end(handle: Any, source: Source) -> bool:
    return int(handle.tell()) >= source.size - 16


def _looks_implicit(source: Source, offset: int) -> bool:
    vr = source.read_at(offset + 4, 2)
    return not (len(vr) == 2 and vr.isalpha() and vr.isupper())


def _element_header(
    source: Source, offset: int, little: bool, implicit: bool
) -> tuple[tuple[int, int], int, int] | None:
    """(tag, value length, where the value starts), or None if the file ends inside the header."""
    order = "<" if little else ">"
    raw = source.read_at(offset, 12)
    if len(raw) < 8:
        return None
    group, element = struct.unpack_from(order + "HH", raw)
    if implicit or (group, element) in (_ITEM, _SEQUENCE_END, (0xFFFE, 0xE00D)):
        return (group, element), struct.unpack_from(order + "I", raw, 4)[0], offset + 8
    if raw[4:6] in _LONG_VRS:
        if len(raw) < 12:
            return None
        return (group, element), struct.unpack_from(order + "I", raw, 8)[0], offset + 12
    return (group, element), struct.unpack_from(order + "H", raw, 6)[0], offset + 8


def _encapsulated(source: Source, offset: int, little: bool, dataset: Any) -> FileCompleteness:
    """Item by item to the sequence delimiter; the offset table (first item) is not a frame."""
    for fragments in range(MAX_ITEMS):
        head = _element_header(source, offset, little, True)
        if head is None:
            return truncated(
                f"compressed pixel data ends after {max(fragments - 1, 0)} fragments, before its delimiter",
                declared=_frames(dataset),
                unit="fragments",
            )
        tag, length, value_at = head
        if tag == _SEQUENCE_END:
            return _rest(source, value_at, little, False) if fragments else whole(unit="bytes")
        if tag != _ITEM or length == _UNDEFINED:
            return unknown("compressed pixel data has an item DICOM does not allow there")
        if value_at + length > source.size:
            return ends_early(f"compressed pixel data (fragment {fragments})", value_at + length, source.size)
        offset = value_at + length
    return unknown("compressed pixel data has too many fragments to check")


def _rest(source: Source, offset: int, little: bool, implicit: bool) -> FileCompleteness:
    """Elements after the pixel data (padding, vendor tags) fit in the file too."""
    while offset < source.size:
        head = _element_header(source, offset, little, implicit)
        if head is None:
            return truncated(
                "an element after the pixel data ends early", declared=offset + 8, found=source.size, unit="bytes"
            )
        _tag, length, value_at = head
        if length == _UNDEFINED:
            return whole(unit="bytes", extent=offset)  # a nested sequence's end is not declared; the pixels were whole
        if value_at + length > source.size:
            return bytes_check("an element after the pixel data", value_at + length, source.size)
        offset = value_at + length
    return whole(declared=source.size, unit="bytes", extent=offset)


def _is_image(dataset: Any) -> bool:
    """An object whose class carries pixel data (an image, a segmentation, a parametric map)."""
    meta = getattr(dataset, "file_meta", None)
    uid = str(dataset.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else "") or "")
    name = uid_name(uid) if uid else ""
    return "Image Storage" in name or name in _PIXEL_CLASSES


def _frames(dataset: Any) -> int:
    try:
        return max(1, int(dataset.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _expected_pixel_bytes(dataset: Any) -> int:
    """What Rows x Columns x Samples x Bits Allocated x Frames declare (0: not an image or not stated)."""
    try:
        rows, columns = int(dataset.get("Rows") or 0), int(dataset.get("Columns") or 0)
        samples = int(dataset.get("SamplesPerPixel") or 1)
        bits = int(dataset.get("BitsAllocated") or 0)
    except (TypeError, ValueError):
        return 0
    total_bits = rows * columns * samples * bits * _frames(dataset)
    return (total_bits + 7) // 8

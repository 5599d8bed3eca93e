"""pydicom, imported on first use and set to read quietly.

Imported at start-up it cost every ``harvest`` command about 0.2 s, although most
instruments write no DICOM. Reading validation is switched off before the first read:
pydicom's validation warns with the offending value (patient data, if a corrupt length
made an element swallow it); ``agent.extract.dicom`` validates values itself, without
quoting them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO, TypeGuard


class NotDicomError(ValueError):
    """pydicom found no DICOM here (its ``InvalidDicomError``)."""


def dcmread(stream: BinaryIO, **options: Any) -> Any:
    """``pydicom.dcmread`` with reading validation off; ``NotDicomError`` for what is not DICOM."""
    import pydicom
    import pydicom.config
    from pydicom.errors import InvalidDicomError

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        return pydicom.dcmread(stream, **options)
    except InvalidDicomError as error:
        raise NotDicomError(str(error)) from None


def uid_name(uid: str) -> str:
    """The registered name of a UID ("CT Image Storage"), or the UID itself."""
    import pydicom.uid

    return str(pydicom.uid.UID(uid).name)


def is_multi_value(value: object) -> TypeGuard[Sequence[Any]]:
    """Is *value* a multi-valued element's value (only ever made by a read, so pydicom is loaded)?"""
    from pydicom.multival import MultiValue

    return isinstance(value, MultiValue)


_PIXEL_DATA = 0x7FE00010
_DEFLATED = "1.2.840.10008.1.2.1.99"


def elements_in_order(stream: BinaryIO, dataset: Any, dataset_start: int) -> bool:
    """Whether the top-level elements of the dataset read from *stream* come in strictly
    ascending tag order, as DICOM requires (each tag once, none out of place).

    A damaged byte in a tag can turn one attribute into another, a patient's into a kept
    one (InstitutionName into Manufacturer); pydicom then keeps whichever came last. The
    file's own order shows it. False also when the elements cannot be walked.
    """
    from pydicom.filereader import data_element_generator

    encoding = getattr(dataset, "original_encoding", None)
    syntax = str(getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not encoding or encoding[0] is None or syntax == _DEFLATED:
        return True  # nothing to walk by (a deflated dataset is checked by its inflater)
    implicit, little = bool(encoding[0]), bool(encoding[1])
    try:
        stream.seek(dataset_start)
        meta_group = stream.read(2) == b"\x02\x00"
        stream.seek(dataset_start)
        if meta_group:  # the file meta group (explicit VR little endian; also without a preamble)
            for _ in data_element_generator(stream, False, True, stop_when=lambda tag, *_: tag.group != 2,
                                            defer_size=256):  # fmt: skip
                pass
        last = -1
        for element in data_element_generator(stream, implicit, little, defer_size=256,
                                              stop_when=lambda tag, *_: tag == _PIXEL_DATA):  # fmt: skip
            if int(element.tag) <= last:
                return False
            last = int(element.tag)
    except Exception:  # noqa: BLE001 - a header that cannot be walked is not trusted for text
        return False
    return True

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

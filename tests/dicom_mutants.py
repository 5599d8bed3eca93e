"""Seeded mutants of DICOM files with canary patient values, for the patient-data fuzz tests.

Mutations hit what a corrupt copy or a broken writer damages: the length fields of data
elements (the file meta's first), and bytes anywhere in the header.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pydicom

CANARIES = {
    "PatientName": "Canary^Patientname",
    "PatientID": "CANARY-ID-7781",
    "PatientBirthDate": "19010203",
    "PatientAddress": "1 Canary Row, Birdtown",
    "OtherPatientIDs": "CANARY-OTHER-9912",
    "PatientTelephoneNumbers": "+00 555 0199 canary",
    "PatientMotherBirthName": "Canarymother^Maiden",
    "ReferringPhysicianName": "Canary^Referrer",
    "InstitutionName": "CANARY IMAGING CENTER",
}
# Every piece of every canary value, as it could appear in any output.
CANARY_PARTS = sorted({part for value in CANARIES.values() for part in re.split(r"[\^ ,]+", value) if len(part) >= 5})
_SHORT_LENGTH = re.compile(rb"[\x00-\xff]{4}(?:AE|AS|CS|DA|DS|DT|IS|LO|LT|PN|SH|ST|TM|UI|US|UL|SS|SL|FL|FD|AT)")


def with_canaries(source: Path, target: Path) -> Path:
    """A copy of a real DICOM file whose patient attributes hold unmistakable canary values."""
    dataset = pydicom.dcmread(source, force=True)
    for keyword, value in CANARIES.items():
        setattr(dataset, keyword, value)
    dataset.save_as(target, enforce_file_format=False)
    return target


def mutants(planted: bytes, count: int, seed: int) -> Iterator[bytes]:
    """*count* damaged copies: a length field of an element set to a random value, or bytes
    of the header changed, or both."""
    generator = random.Random(seed)  # noqa: S311 - test data, not cryptography
    header_end = min(len(planted), 4096)
    lengths = [found.start() + 6 for found in _SHORT_LENGTH.finditer(planted, 0, header_end)]
    for index in range(count):
        data = bytearray(planted)
        kind = index % 3
        if kind in (0, 2) and lengths:
            position = generator.choice(lengths)
            new_length = generator.choice([0, 1, 2, 7, 64, 255, 1400, generator.randint(0, 0xFFFF)])
            data[position : position + 2] = new_length.to_bytes(2, "little")
        if kind in (1, 2):
            for _ in range(generator.randint(1, 4)):
                position = generator.randrange(128, header_end)
                data[position] = generator.randrange(256)
        yield bytes(data)

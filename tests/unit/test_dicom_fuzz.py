"""Fuzz: damaged DICOM headers never carry a patient value into the extracted metadata."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import pytest

from agent.extract import extract_metadata
from tests.dicom_mutants import CANARY_PARTS, mutants, with_canaries
from tests.helpers import DATA

DICOM_SAMPLES = sorted(path for path in (DATA / "dicom").rglob("*") if path.is_file())
MUTANTS_PER_SAMPLE = 40  # x 11 samples: a few hundred mutants, the same on every run


@pytest.mark.parametrize("path", DICOM_SAMPLES, ids=lambda path: path.name)
def test_no_planted_patient_value_survives_a_damaged_header(
    path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = with_canaries(path, tmp_path / "planted.dcm").read_bytes()
    caplog.set_level(logging.DEBUG)
    target = tmp_path / "mutant.dcm"
    for number, data in enumerate(mutants(planted, MUTANTS_PER_SAMPLE, seed=zlib.crc32(path.name.encode()))):
        target.write_bytes(data)
        output = extract_metadata(target).model_dump_json()
        for part in CANARY_PARTS:
            assert part not in output, f"{path.name} mutant {number}: {part!r} leaked into metadata"
    captured = capsys.readouterr()
    for part in CANARY_PARTS:
        assert part not in caplog.text, f"{part!r} leaked into a log record"
        assert part not in captured.err + captured.out, f"{part!r} leaked to stderr/stdout"


def test_the_reported_transfer_syntax_case_is_dropped_with_a_warning_naming_only_the_attribute(
    tmp_path: Path,
) -> None:
    planted = bytearray(with_canaries(DATA / "dicom/single/CT_small.dcm", tmp_path / "p.dcm").read_bytes())
    position = planted.index(b"\x02\x00\x10\x00UI") + 6  # (0002,0010) Transfer Syntax UID, its length
    planted[position : position + 2] = (1400).to_bytes(2, "little")
    target = tmp_path / "corrupt.dcm"
    target.write_bytes(bytes(planted))
    metadata = extract_metadata(target)
    output = metadata.model_dump_json()
    assert not any(part in output for part in CANARY_PARTS), output
    assert metadata.dicom is None or metadata.dicom.transfer_syntax_uid is None
    assert any("TransferSyntaxUID" in warning or "unreadable" in warning for warning in metadata.warnings)


@pytest.mark.parametrize("sample", ["single/CT_small.dcm", "single/PT_ACRIN-FLT-Breast_1.dcm"])
@pytest.mark.parametrize("damage", ["repeated", "out of order"])
def test_an_attribute_whose_tag_was_damaged_into_a_kept_one_is_not_believed(
    sample: str, damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """InstitutionName (0008,0080) with one byte changed reads as Manufacturer (0008,0070):
    repeated after the real one, or (with SOPClassUID's group damaged too) out of order."""
    planted = bytearray(with_canaries(DATA / "dicom" / sample, tmp_path / "p.dcm").read_bytes())
    institution = planted.index(b"\x08\x00\x80\x00LO")
    planted[institution + 2] = 0x70
    if damage == "out of order":
        sop_class = planted.index(b"\x08\x00\x16\x00UI")
        planted[sop_class + 1] = 0xE2
    target = tmp_path / "damaged.dcm"
    target.write_bytes(bytes(planted))
    caplog.set_level(logging.DEBUG)
    metadata = extract_metadata(target)
    output = metadata.model_dump_json()
    assert not any(part in output + caplog.text for part in CANARY_PARTS), output
    assert metadata.format == "dicom" and metadata.dicom is not None and metadata.dicom.manufacturer is None
    assert metadata.dicom.sop_instance_uid  # values their VR constrains are kept
    assert any("out of order" in warning for warning in metadata.warnings)


def test_an_intact_header_keeps_its_free_text(tmp_path: Path) -> None:
    # Also a file written without its 128-byte preamble and DICM, its meta group first.
    bare = tmp_path / "no-preamble.dcm"
    bare.write_bytes((DATA / "dicom/single/CT_small.dcm").read_bytes()[132:])
    for path in [*DICOM_SAMPLES, bare]:
        metadata = extract_metadata(path)
        assert not any("out of order" in warning for warning in metadata.warnings), path.name
    assert extract_metadata(DATA / "dicom/single/CT_small.dcm").instrument.manufacturer
    assert extract_metadata(bare).instrument.manufacturer

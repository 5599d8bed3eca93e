"""Fuzz: damaged DICOM headers never carry a patient value into the extracted metadata."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.extract import extract_metadata
from tests.dicom_mutants import CANARY_PARTS, mutants, with_canaries
from tests.helpers import DATA

DICOM_SAMPLES = sorted(path for path in (DATA / "dicom").rglob("*") if path.is_file())
MUTANTS_PER_SAMPLE = 40  # x 11 samples: a few hundred mutants


@pytest.mark.parametrize("path", DICOM_SAMPLES, ids=lambda path: path.name)
def test_no_planted_patient_value_survives_a_damaged_header(
    path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = with_canaries(path, tmp_path / "planted.dcm").read_bytes()
    caplog.set_level(logging.DEBUG)
    target = tmp_path / "mutant.dcm"
    for number, data in enumerate(mutants(planted, MUTANTS_PER_SAMPLE, seed=hash(path.name) & 0xFFFF)):
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

"""Fuzz end to end: damaged DICOM files with canary patient values through `harvest scan`.

No canary may appear in anything the agent writes or prints: the bags' tag files
(harvest.json, RO-Crate, bag-info, manifests), the journal, the log file, the scan's
output, `status --json` and `inspect --json`. (The payload is the file itself.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.dicom_mutants import CANARY_PARTS, mutants, with_canaries
from tests.helpers import DATA, harvest_command, subprocess_env, write_config

SAMPLES = ["dicom/single/CT_small.dcm", "dicom/single/MR_small.dcm", "dicom/enhanced/emri_small.dcm"]


def _leaks(text: bytes) -> list[str]:
    return [part for part in CANARY_PARTS if part.encode() in text]


def test_no_planted_patient_value_from_a_damaged_header_reaches_any_output(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "rad" / "s1"
    session.mkdir(parents=True)
    for sample in SAMPLES:
        planted = with_canaries(DATA / sample, tmp_path / "planted.dcm").read_bytes()
        for number, data in enumerate(mutants(planted, 30, seed=7)):
            (session / f"{Path(sample).stem}-{number:02d}.dcm").write_bytes(data)
    (tmp_path / "archive").mkdir()
    log_file = tmp_path / "agent.log"
    config = write_config(
        tmp_path, logging={"file": str(log_file), "level": "debug"},
        watch=[{"path": str(tmp_path / "instrument"), "dataset": "{operator}/{session}", "malformed": "quarantine"}],
    )  # fmt: skip
    env = subprocess_env()
    scan = subprocess.run(harvest_command("scan", "--config", str(config)), capture_output=True, env=env, timeout=300)
    status = subprocess.run(harvest_command("status", "--json", "--config", str(config)), capture_output=True,
                            env=env, timeout=60)  # fmt: skip
    inspect = subprocess.run(harvest_command("inspect", "--json", *map(str, sorted(session.iterdir()))),
                             capture_output=True, env=env, timeout=300)  # fmt: skip
    assert b"Traceback" not in scan.stderr + status.stderr + inspect.stderr
    outputs = {
        "scan output": scan.stdout + scan.stderr,
        "status --json": status.stdout + status.stderr,
        "inspect --json": inspect.stdout + inspect.stderr,
        "log file": log_file.read_bytes() if log_file.exists() else b"",
    }
    for path in (tmp_path / "state").iterdir():
        if path.is_file():
            outputs[f"journal {path.name}"] = path.read_bytes()
    tag_files = [path for path in (tmp_path / "archive").rglob("*") if path.is_file() and "/data/" not in str(path)]
    assert any(path.name == "harvest.json" for path in tag_files), scan.stdout
    for path in tag_files:
        outputs[str(path.relative_to(tmp_path))] = path.read_bytes()
    leaks = {where: found for where, text in outputs.items() if (found := _leaks(text))}
    assert leaks == {}, leaks

"""Metadata at acquisition time, end to end: harvest.json, RO-Crate, filesets, DICOM series."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import bagit
from rocrate.rocrate import ROCrate

from tests.dicom_mutants import CANARIES, with_canaries
from tests.helpers import harvest_command, stays_false, subprocess_env, wait_for, write_config
from tests.integration.conftest import Daemon, bag_committed, copy_sample, harvest_json, run_scan, wait_for_revision
from tests.unit.test_bagit_package import validate_harvest_json

DaemonFactory = Callable[[Path], Daemon]


def test_bag_carries_metadata_and_a_valid_ro_crate(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "alice" / "zeiss"
    copy_sample("ome-tiff/aics/s_1_t_1_c_1_z_1.ome.tiff", session)
    copy_sample("dicom/single/CT_small.dcm", session)
    (session / "notes.txt").write_text("acquisition notes")
    (tmp_path / "archive").mkdir()
    result = run_scan(write_config(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr

    bag_path = tmp_path / "archive/TEST-SCOPE-01/alice/zeiss"
    bagit.Bag(str(bag_path)).validate()  # the crate and harvest.json are covered by the tag manifest
    sidecar = harvest_json(bag_path)
    validate_harvest_json(sidecar)
    by_path = {entry["path"]: entry for entry in sidecar["files"]}
    zeiss = by_path["data/s_1_t_1_c_1_z_1.ome.tiff"]["metadata"]
    assert zeiss["objectives"][0]["magnification"] == 20.0
    assert abs(zeiss["pixel_size_um"]["x"] - 1.0833) < 1e-3
    assert by_path["data/CT_small.dcm"]["metadata"]["dicom"]["modality"] == "CT"
    assert by_path["data/notes.txt"]["metadata"]["format"] == "generic"
    summary = sidecar["summary"]
    assert summary["formats"] == ["dicom", "generic", "ome-tiff"]
    assert summary["modalities"] == ["CT"]
    assert summary["channel_names"] == ["Bright"]
    assert summary["acquisition_date_range"]["end"].startswith("2019-06-27")

    crate = ROCrate(str(bag_path))
    assert crate.root_dataset["identifier"] == "alice/zeiss"
    entity = crate.dereference("data/s_1_t_1_c_1_z_1.ome.tiff")
    assert entity is not None and "File" in entity.type
    assert entity["sha256"] == by_path["data/s_1_t_1_c_1_z_1.ome.tiff"]["sha256"]
    assert entity["contentSize"] == str((session / "s_1_t_1_c_1_z_1.ome.tiff").stat().st_size)
    assert entity["encodingFormat"] == "image/tiff"
    action = crate.dereference("#acquisition")
    assert action is not None
    assert action["instrument"]["identifier"] == "TEST-SCOPE-01"
    assert action["agent"]["name"] == "alice"


def test_fileset_waits_for_every_member(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    (tmp_path / "archive").mkdir()
    (tmp_path / "instrument").mkdir()
    config = write_config(tmp_path, settle={"quiet_seconds": 0.3, "dataset_idle_seconds": 0.5})
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    session = tmp_path / "instrument" / "bob" / "zstack"
    session.mkdir(parents=True)
    source = Path(__file__).parents[1] / "data/ome-tiff/multifile-master"
    for index in (1, 2):
        copy_sample(f"ome-tiff/multifile-master/multifile-Z{index}.ome.tiff", session)
    wait_for(lambda: daemon.status()["files"]["hashed"] == 2, what="two members hashed")
    bag = tmp_path / "archive/TEST-SCOPE-01/bob/zstack"
    # Six idle periods: an incomplete fileset must not close.
    stays_false(lambda: bag_committed(bag), 3, "fileset committed with members missing")
    for index in (3, 4, 5):
        copy_sample(f"ome-tiff/multifile-master/multifile-Z{index}.ome.tiff", session)
    sidecar = wait_for_revision(bag, 1)
    assert sorted(entry["path"] for entry in sidecar["files"]) == sorted(
        f"data/{path.name}" for path in source.iterdir()
    )
    assert sidecar["warnings"] == []
    assert daemon.stop() == 0


def test_fileset_closed_incomplete_names_missing_members(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "carol" / "companion"
    for name in ("multifile.companion.ome", "multifile-Z1.ome.tiff", "multifile-Z2.ome.tiff"):
        copy_sample(f"ome-tiff/multifile-companion/{name}", session)
    (tmp_path / "archive").mkdir()
    result = run_scan(write_config(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    sidecar = harvest_json(tmp_path / "archive/TEST-SCOPE-01/carol/companion")
    assert len(sidecar["files"]) == 3
    assert sidecar["warnings"] == [
        "closed with fileset members missing: multifile-Z3.ome.tiff, multifile-Z4.ome.tiff, multifile-Z5.ome.tiff"
    ]


def test_dicom_grouped_by_series_with_late_instance(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    export = tmp_path / "instrument" / "export"
    export.mkdir(parents=True)
    (tmp_path / "archive").mkdir()
    watch = [{"path": str(tmp_path / "instrument"), "group_by": "dicom-series", "dataset": "{folder}"}]
    config = write_config(tmp_path, watch=watch, settle={"quiet_seconds": 0.3, "dataset_idle_seconds": 1.0})
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    ct_files = sorted((Path(__file__).parents[1] / "data/dicom/series/CT_5slice").iterdir())
    for path in ct_files[:4]:
        copy_sample(f"dicom/series/CT_5slice/{path.name}", export)
    for path in sorted((Path(__file__).parents[1] / "data/dicom/series/MR_3slice").iterdir()):
        copy_sample(f"dicom/series/MR_3slice/{path.name}", export)

    archive = tmp_path / "archive/TEST-SCOPE-01"
    wait_for(lambda: len(list(archive.glob("*/*/tagmanifest-sha256.txt"))) == 2, what="two series committed")
    bags = {harvest_json(path.parent)["dataset"]["fields"]["modality"]: path.parent for path in
            archive.glob("*/*/tagmanifest-sha256.txt")}  # fmt: skip
    assert set(bags) == {"CT", "MR"}
    assert len(harvest_json(bags["CT"])["files"]) == 4
    assert len(harvest_json(bags["MR"])["files"]) == 3
    ct_fields = harvest_json(bags["CT"])["dataset"]["fields"]
    assert bags["CT"].relative_to(archive).as_posix() == (
        f"{ct_fields['study_instance_uid']}/{ct_fields['series_instance_uid']}"
    )

    copy_sample(f"dicom/series/CT_5slice/{ct_files[4].name}", export)  # a late instance
    second = wait_for_revision(bags["CT"], 2)
    assert len(second["files"]) == 5
    bagit.Bag(str(bags["CT"])).validate()
    assert daemon.stop() == 0


def test_patient_data_never_leaves_the_payload(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "dave" / "scan1"
    session.mkdir(parents=True)
    for path in sorted((Path(__file__).parents[1] / "data/dicom/series/CT_5slice").iterdir()):
        with_canaries(path, session / path.name)
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    result = run_scan(config)
    assert result.returncode == 0, result.stdout + result.stderr
    status = subprocess.run(
        harvest_command("status", "--json", "--config", str(config)),
        capture_output=True, text=True, env=subprocess_env(),
    )  # fmt: skip
    assert status.returncode == 0, status.stderr  # a scan archived everything: healthy without a daemon
    inspect = subprocess.run(
        harvest_command("inspect", *(str(path) for path in session.iterdir())),
        capture_output=True, text=True, env=subprocess_env(), check=True,
    )  # fmt: skip
    bag = tmp_path / "archive/TEST-SCOPE-01/dave/scan1"
    outputs = {
        "scan output": result.stdout + result.stderr,
        "status": status.stdout + status.stderr,
        "inspect": inspect.stdout + inspect.stderr,
    }
    for tag_file in bag.iterdir():
        if tag_file.is_file():
            outputs[tag_file.name] = tag_file.read_text(encoding="utf-8")
    connection = sqlite3.connect(tmp_path / "state" / "journal.sqlite3")
    outputs["journal"] = json.dumps(connection.execute("SELECT * FROM files").fetchall())
    connection.close()
    for where, text in outputs.items():
        for value in CANARIES.values():
            for part in value.split("^"):
                assert part not in text, f"patient value {part!r} found in {where}"


def test_malformed_files_are_harvested_or_quarantined_as_the_rule_says(tmp_path: Path) -> None:
    for kind in ("keep", "hold"):
        session = tmp_path / kind / "erin" / "s1"
        for sample in ("malformed/tiff/empty_0byte.tif", "malformed/dicom/badVR.dcm", "tiff/plain/nonometif.tif"):
            copy_sample(sample, session)
    (tmp_path / "archive").mkdir()
    watch = [
        {"path": str(tmp_path / "keep"), "name": "keep", "dataset": "{operator}/{session}"},
        {"path": str(tmp_path / "hold"), "name": "hold", "dataset": "{operator}/{session}", "malformed": "quarantine"},
    ]
    destinations = [{"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive")}]
    result = run_scan(write_config(tmp_path, watch=watch, destinations=destinations))
    assert result.returncode == 1  # the quarantined file is reported as an item failure
    assert "quarantined (malformed" in result.stdout
    kept_bag = tmp_path / "archive/TEST-SCOPE-01/keep/erin/s1"
    held_bag = tmp_path / "archive/TEST-SCOPE-01/hold/erin/s1"
    bagit.Bag(str(kept_bag)).validate()
    bagit.Bag(str(held_bag)).validate()
    held = harvest_json(held_bag)
    assert sorted(entry["source_path"] for entry in held["files"]) == ["erin/s1/badVR.dcm", "erin/s1/nonometif.tif"]
    assert [item["source_path"] for item in held["missing"]] == ["erin/s1/empty_0byte.tif"]
    assert held["missing"][0]["reason"].startswith("quarantined")
    assert not (held_bag / "data/empty_0byte.tif").exists()
    assert (tmp_path / "hold/erin/s1/empty_0byte.tif").exists()
    by_path = {entry["source_path"]: entry for entry in harvest_json(kept_bag)["files"]}
    assert "erin/s1/empty_0byte.tif" in by_path
    assert any("not a TIFF file" in warning for warning in by_path["erin/s1/empty_0byte.tif"]["metadata"]["warnings"])
    bad_vr = " ".join(by_path["erin/s1/badVR.dcm"]["metadata"]["warnings"])
    assert "NumberOfFrames" in bad_vr and "1A" not in bad_vr  # the attribute is named, never its value

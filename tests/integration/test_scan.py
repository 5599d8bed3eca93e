"""``harvest scan`` end to end on real sample acquisitions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import unicodedata
from pathlib import Path

import bagit

from tests.helpers import harvest_command, snapshot, subprocess_env, write_config
from tests.integration.conftest import copy_sample, harvest_json, run_scan


def test_scan_archives_samples_as_valid_bags_and_leaves_source_untouched(tmp_path: Path) -> None:
    instrument = tmp_path / "instrument"
    copy_sample("dicom/series/CT_5slice", instrument / "alice")
    copy_sample("ome-tiff/multifile-master", instrument / "alice")
    copy_sample("tiff/plain/shapes_lzw.tif", instrument / "bob" / "s1" / "nested")
    copy_sample("tiff/micromanager/181003_multi_pos_time_course_1_MMStack.ome.tif", instrument / "bob" / "s1")
    (instrument / "alice" / "CT_5slice" / "Thumbs.db").write_bytes(b"junk")
    (instrument / "alice" / "CT_5slice" / "export.tmp").write_bytes(b"in progress")
    (instrument / "stray.txt").write_text("not in a dataset folder")
    (tmp_path / "archive").mkdir()
    before = snapshot(instrument)

    result = run_scan(write_config(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "1 files outside any dataset folder" in result.stdout
    bags = {
        "alice/CT_5slice": 5,
        "alice/multifile-master": 5,
        "bob/s1": 2,
    }
    for key, count in bags.items():
        bag_path = tmp_path / "archive" / "TEST-SCOPE-01" / key
        bagit.Bag(str(bag_path)).validate()
        sidecar = harvest_json(bag_path)
        assert len(sidecar["files"]) == count, key
        assert sidecar["instrument"]["id"] == "TEST-SCOPE-01"
        assert sidecar["dataset"]["complete"] is True
        for entry in sidecar["files"]:
            source = instrument / entry["source_path"]
            assert hashlib.sha256(source.read_bytes()).hexdigest() == entry["sha256"]
    assert not list((tmp_path / "archive").rglob("Thumbs.db"))
    assert not list((tmp_path / "archive").rglob("*.tmp"))
    assert (tmp_path / "archive/TEST-SCOPE-01/bob/s1/data/nested/shapes_lzw.tif").exists()
    assert harvest_json(tmp_path / "archive/TEST-SCOPE-01/bob/s1")["dataset"]["fields"] == {
        "operator": "bob",
        "session": "s1",
    }
    assert snapshot(instrument) == before

    status = subprocess.run(
        harvest_command("status", "--json", "--config", str(tmp_path / "config.yaml")),
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    # A scan-only setup (cron): no daemon, everything archived -> healthy (exit 0).
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["health"]["state"] == "healthy"
    assert report["everything_archived"] is True and report["agent"]["mode"] == "scan"
    assert all(destination["state"] == "unknown" for destination in report["destinations"])
    assert {"files", "datasets", "errors"} <= set(report)
    assert report["files"]["hashed"] == 12 and report["files"]["ignored"] == 1
    assert report["agent"]["running"] is False

    # A second scan finds nothing new and duplicates nothing.
    again = run_scan(tmp_path / "config.yaml")
    assert again.returncode == 0, again.stderr
    assert snapshot(instrument) == before


def test_awkward_names_and_empty_files(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "carol" / "s 1"
    session.mkdir(parents=True)
    nfc = unicodedata.normalize("NFC", "café-é.tif")
    nfd = unicodedata.normalize("NFD", "café-é.tif")
    (session / nfc).write_bytes(b"nfc")
    other_session = tmp_path / "instrument" / "carol" / "s2"
    other_session.mkdir()
    (other_session / nfd).write_bytes(b"nfd")
    (session / "empty.tif").write_bytes(b"")
    (session / "with space & 100%.txt").write_bytes(b"x")
    long_name = "L" * 251 + ".tif"
    (session / long_name).write_bytes(b"long")
    (session / "日本語").mkdir()
    (session / "日本語" / "データ.dcm").write_bytes(b"dicom-ish")
    (session / "loop").symlink_to(session)  # a symlink loop: not followed
    (tmp_path / "archive").mkdir()
    before = snapshot(tmp_path / "instrument")

    result = run_scan(write_config(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    bag_path = tmp_path / "archive/TEST-SCOPE-01/carol/s 1"
    bagit.Bag(str(bag_path)).validate()
    payload = {entry["path"] for entry in harvest_json(bag_path)["files"]}
    assert payload == {
        f"data/{nfc}", "data/empty.tif", "data/with space & 100%.txt", f"data/{long_name}", "data/日本語/データ.dcm",
    }  # fmt: skip
    other_bag = tmp_path / "archive/TEST-SCOPE-01/carol/s2"
    bagit.Bag(str(other_bag)).validate()
    assert (other_bag / "data" / nfd).read_bytes() == b"nfd"
    assert snapshot(tmp_path / "instrument") == before


def test_names_that_differ_only_by_normalization_are_both_archived_apart(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "erin" / "s1"
    session.mkdir(parents=True)
    nfc = unicodedata.normalize("NFC", "Zürich.tif")
    nfd = unicodedata.normalize("NFD", "Zürich.tif")
    (session / nfc).write_bytes(b"first")
    (session / nfd).write_bytes(b"second")
    (session / "other.tif").write_bytes(b"fine")
    (tmp_path / "archive").mkdir()

    result = run_scan(write_config(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    bag_path = tmp_path / "archive/TEST-SCOPE-01/erin/s1"
    bagit.Bag(str(bag_path)).validate()
    sidecar = harvest_json(bag_path)
    assert len(sidecar["files"]) == 3 and sidecar["missing"] == []
    contents = {(bag_path / entry["path"]).read_bytes(): entry["source_path"] for entry in sidecar["files"]}
    assert contents[b"first"] == f"erin/s1/{nfc}" and contents[b"second"] == f"erin/s1/{nfd}"


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    config_path.write_text(config_path.read_text().replace("quiet_seconds", "quiet_secs"))
    result = run_scan(config_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "settle.quiet_secs: unknown key; did you mean 'quiet_seconds'?" in result.stderr
    check = subprocess.run(
        harvest_command("config", "check", str(config_path)), capture_output=True, text=True, env=subprocess_env()
    )
    assert check.returncode == 2 and f"{config_path}:" in check.stderr
    missing = subprocess.run(
        harvest_command("status", "--config", str(tmp_path / "nope.yaml")),
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"harvest: config file not found: {tmp_path / 'nope.yaml'} (name one with --config FILE or $HARVEST_CONFIG)"
    )


def test_scan_reports_unavailable_destination_with_exit_1(tmp_path: Path) -> None:
    copy_sample("dicom/single/CT_small.dcm", tmp_path / "instrument" / "dave" / "s1")
    config_path = write_config(tmp_path)  # archive folder never created: share "not mounted"
    result = run_scan(config_path)
    assert result.returncode == 1, result.stdout
    assert "destination archive unavailable" in result.stdout
    assert "is the share mounted" in result.stdout
    assert not (tmp_path / "archive").exists()


def test_unusable_state_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    (tmp_path / "state").write_text("a file where the state folder should be")
    result = run_scan(config_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"harvest: state_dir {tmp_path / 'state'} is not usable")
    assert len(result.stderr.strip().splitlines()) == 1

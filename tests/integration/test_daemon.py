"""``harvest run`` as a subprocess: live drops, slow writers, late files, outages, restarts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import bagit

from tests.helpers import harvest_command, snapshot, subprocess_env, wait_for, write_config
from tests.integration.conftest import Daemon, bag_committed, copy_sample, harvest_json, wait_for_revision

DaemonFactory = Callable[[Path], Daemon]


def test_live_drop_late_file_new_revision_and_clean_shutdown(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    (tmp_path / "instrument").mkdir()
    (tmp_path / "archive").mkdir()
    daemon = daemon_factory(write_config(tmp_path)).start()
    wait_for(daemon.running, what="agent running", timeout=20)

    session = tmp_path / "instrument" / "alice" / "s1"
    copy_sample("dicom/series/MR_3slice", session)
    bag = tmp_path / "archive/TEST-SCOPE-01/alice/s1"
    first = wait_for_revision(bag, 1)
    assert len(first["files"]) == 3
    bagit.Bag(str(bag)).validate()

    copy_sample("dicom/single/MR_small.dcm", session / "MR_3slice")  # a late instance
    second = wait_for_revision(bag, 2)
    assert len(second["files"]) == 4
    bagit.Bag(str(bag)).validate()

    report = daemon.status()
    assert report["agent"]["running"] is True
    dataset = next(item for item in report["datasets"] if item["key"] == "alice/s1")
    assert dataset["revision"] == 2 and dataset["committed"]["archive"]["revision"] == 2
    assert daemon.stop() == 0
    assert daemon.status()["agent"]["running"] is False


def test_file_still_being_written_is_never_uploaded(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    session = tmp_path / "instrument" / "bob" / "slow"
    session.mkdir(parents=True)
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path, settle={"quiet_seconds": 1.0, "dataset_idle_seconds": 1.0})
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)

    target = session / "stack.tif"
    payload = tmp_path / "archive/TEST-SCOPE-01/bob/slow/data/stack.tif"
    written = hashlib.sha256()
    seen_early: list[int] = []
    done = threading.Event()

    def watch_archive() -> None:
        while not done.is_set():
            if payload.exists():
                seen_early.append(payload.stat().st_size)
            done.wait(0.05)

    watcher = threading.Thread(target=watch_archive)
    watcher.start()
    try:
        with target.open("wb") as stream:  # appends for ~6 s, pausing less than the quiet period
            for _ in range(20):
                chunk = os.urandom(64 * 1024)
                stream.write(chunk)
                stream.flush()
                written.update(chunk)
                done.wait(0.3)
    finally:
        done.set()
        watcher.join()
    assert seen_early == [], "the archive received the file while it was still being written"
    wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/bob/slow", 1)
    assert hashlib.sha256(payload.read_bytes()).hexdigest() == written.hexdigest()
    assert daemon.stop() == 0


def test_unavailable_destination_pauses_then_resumes(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    copy_sample("tiff/imagej/scifio_test_img.tif", tmp_path / "instrument" / "carol" / "s1")
    daemon = daemon_factory(write_config(tmp_path)).start()  # the archive "share" is not mounted yet

    def paused() -> bool:
        if not daemon.running():
            return False
        destinations = daemon.status()["destinations"]
        return bool(destinations) and destinations[0]["state"] == "paused"

    wait_for(paused, what="destination paused", timeout=30)
    report = daemon.status()
    assert "is the share mounted" in report["destinations"][0]["reason"]
    assert report["destinations"][0]["next_retry_at"] is not None
    assert report["agent"]["running"] and report["files"]["hashed"] == 1  # local stages went on
    assert not (tmp_path / "archive").exists()

    (tmp_path / "archive").mkdir()  # the share comes back
    wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/carol/s1", 1, timeout=60)
    assert daemon.status()["destinations"][0]["state"] == "active"
    assert daemon.stop() == 0


def test_dataset_folder_renamed_while_harvesting_loses_nothing(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    (tmp_path / "instrument" / "dave").mkdir(parents=True)
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path, settle={"quiet_seconds": 0.5, "dataset_idle_seconds": 3})
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    copy_sample("dicom/series/CT_5slice", tmp_path / "instrument" / "dave")
    wait_for(lambda: daemon.status()["files"]["hashed"] >= 5, what="files hashed")
    renamed = tmp_path / "instrument" / "dave" / "CT_5slice_renamed"
    (tmp_path / "instrument" / "dave" / "CT_5slice").rename(renamed)

    sidecar = wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/dave/CT_5slice_renamed", 1)
    bagit.Bag(str(tmp_path / "archive/TEST-SCOPE-01/dave/CT_5slice_renamed")).validate()
    assert sorted(entry["path"] for entry in sidecar["files"]) == sorted(
        f"data/{path.name}" for path in renamed.iterdir()
    )
    old_bag = tmp_path / "archive/TEST-SCOPE-01/dave/CT_5slice"
    wait_for(lambda: bag_committed(old_bag), what="old dataset committed")
    bagit.Bag(str(old_bag)).validate()  # whatever it holds was verified; the rest is listed as missing
    old = harvest_json(old_bag)
    assert len(old["files"]) + len(old["missing"]) == 5
    assert daemon.status()["agent"]["running"]
    assert daemon.stop() == 0


def test_sigkill_mid_copy_resumes_from_last_durable_offset(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    size = 220 * 1024 * 1024
    checkpoint = 16 * 1024 * 1024
    session = tmp_path / "instrument" / "erin" / "big"
    session.mkdir(parents=True)
    source = session / "volume.raw"
    digest = hashlib.sha256()
    with source.open("wb") as stream:
        block = os.urandom(1024 * 1024)
        for index in range(size // len(block)):
            chunk = index.to_bytes(4, "little") + block[4:]
            stream.write(chunk)
            digest.update(chunk)
    (tmp_path / "archive").mkdir()
    before = snapshot(tmp_path / "instrument")
    destination = {
        "name": "archive", "type": "filesystem", "path": str(tmp_path / "archive"),
        "checkpoint_bytes": checkpoint, "bandwidth": "40MiB/s",
    }  # fmt: skip
    config = write_config(tmp_path, destinations=[destination])
    daemon = daemon_factory(config).start()
    staging = tmp_path / "archive" / ".harvest-partial"

    def partial_size() -> int:
        files = list(staging.glob("*.partial")) if staging.exists() else []
        return files[0].stat().st_size if files else 0

    wait_for(lambda: partial_size() > 100 * 1024 * 1024, what="copy under way", timeout=60, interval=0.01)
    daemon.kill()
    size_at_kill = partial_size()
    durable = int(next(item for item in Daemon.journal_rows(tmp_path, "SELECT offset_bytes FROM deliveries"))[0])
    assert 0 < durable <= size_at_kill

    restarted = daemon_factory(config).start()
    sidecar = wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/erin/big", 1, timeout=120)
    resumed_from = int(
        next(item for item in Daemon.journal_rows(tmp_path, "SELECT resumed_from_bytes FROM deliveries"))[0]
    )
    assert resumed_from == durable
    assert size_at_kill - resumed_from < checkpoint, "re-copied a chunk or more"
    assert sidecar["files"][0]["sha256"] == digest.hexdigest()
    copy = tmp_path / "archive/TEST-SCOPE-01/erin/big/data/volume.raw"
    with copy.open("rb") as copied:
        assert hashlib.file_digest(copied, "sha256").hexdigest() == digest.hexdigest()
    assert f"resuming TEST-SCOPE-01/erin/big/data/volume.raw from byte {durable}" in restarted.log()
    assert restarted.stop() == 0
    assert snapshot(tmp_path / "instrument") == before


def test_a_second_agent_on_the_same_state_dir_is_refused(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    (tmp_path / "instrument").mkdir()
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    second = subprocess.run(
        harvest_command("scan", "--config", str(config)), capture_output=True, text=True, env=subprocess_env(),
        timeout=60,
    )  # fmt: skip
    assert second.returncode == 2
    assert f"another harvest agent (pid {daemon.process.pid if daemon.process else ''})" in second.stderr
    assert "Traceback" not in second.stderr
    assert daemon.stop() == 0
    again = subprocess.run(
        harvest_command("scan", "--config", str(config)), capture_output=True, text=True, env=subprocess_env(),
        timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr

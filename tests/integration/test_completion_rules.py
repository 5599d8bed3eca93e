"""Marker-file completion, polling roots, and a destination that fills up and recovers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import bagit

from agent.config.models import FilesystemDestination
from agent.destinations.base import PayloadItem
from agent.destinations.filesystem import FilesystemTransport
from agent.pipeline.hashing import identity_of
from tests.helpers import stays_false, wait_for, write_config
from tests.integration.conftest import Daemon, bag_committed, copy_sample, wait_for_revision

DaemonFactory = Callable[[Path], Daemon]


def test_marker_file_closes_dataset_and_idle_does_not(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    (tmp_path / "archive").mkdir()
    (tmp_path / "instrument").mkdir()
    config = write_config(
        tmp_path,
        settle={"quiet_seconds": 0.3, "dataset_idle_seconds": 0.5, "marker": "acquisition.done"},
        watch=[{"path": str(tmp_path / "instrument"), "dataset": "{operator}/{session}", "polling": True,
                "polling_interval_seconds": 0.3}],
    )  # fmt: skip
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    session = tmp_path / "instrument" / "lightsheet" / "run1"
    copy_sample("tiff/plain/leica_stack_Series014_z000_ch00.tif", session)
    copy_sample("tiff/plain/leica_stack_Series014_z001_ch00.tif", session)
    wait_for(lambda: daemon.status()["files"]["hashed"] == 2, what="both planes hashed (polling observer)")
    bag = tmp_path / "archive/TEST-SCOPE-01/lightsheet/run1"
    # About six idle periods: without the marker the dataset must stay open.
    stays_false(lambda: bag_committed(bag), 3, "dataset closed before its marker file arrived")
    copy_sample("tiff/plain/leica_stack_Series014_z002_ch00.tif", session)
    (session / "acquisition.done").write_text("")
    sidecar = wait_for_revision(bag, 1)
    assert sidecar["dataset"]["close_reason"] == "marker file acquisition.done arrived"
    assert len(sidecar["files"]) == 4
    bagit.Bag(str(bag)).validate()
    assert daemon.stop() == 0


def test_full_destination_pauses_and_recovers(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    archive = tmp_path / "archive"
    source = copy_sample("dicom/single/CT_small.dcm", tmp_path / "instrument" / "frank" / "s1")
    # The staging file this delivery will use is made a link to /dev/full, where every
    # write fails with ENOSPC exactly as on a full disk.
    transport = FilesystemTransport(FilesystemDestination(name="archive", type="filesystem", path=archive))
    item = PayloadItem(
        source_path=source,
        identity=identity_of(source.stat()),
        sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
        bag_path="TEST-SCOPE-01/frank/s1",
        path_in_dataset="CT_small.dcm",
        resume_offset_bytes=0,
    )
    staging = transport._staging_path(item)
    staging.parent.mkdir(parents=True)
    staging.symlink_to("/dev/full")
    daemon = daemon_factory(write_config(tmp_path)).start()

    def paused() -> bool:
        return daemon.running() and any(item["state"] == "paused" for item in daemon.status()["destinations"])

    wait_for(paused, what="destination paused", timeout=30)
    report = daemon.status()
    assert report["agent"]["running"]
    assert "No space left on device" in report["destinations"][0]["reason"]
    staging.unlink()  # space freed
    wait_for_revision(archive / "TEST-SCOPE-01/frank/s1", 1, timeout=60)
    bagit.Bag(str(archive / "TEST-SCOPE-01/frank/s1")).validate()
    assert daemon.stop() == 0

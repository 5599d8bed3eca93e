"""Complete by declaration, end to end: the daemon as a subprocess, a filesystem archive.

A dataset whose files declare everything it holds is committed as soon as all of it is
there (the idle time here is 300 s: nothing else could close it within these tests); a
truncated file waits, is shown as incomplete, and is then quarantined or shipped with
``complete: false`` as its rule says, never as complete.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bagit
import pydicom
import pytest

from tests.helpers import DATA, harvest_command, stays_false, subprocess_env, wait_for, write_config
from tests.integration.conftest import Daemon, bag_committed, copy_sample, wait_for_revision

DaemonFactory = Callable[[Path], Daemon]
LONG_IDLE = 300.0


def _folders(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir(exist_ok=True)
    (tmp_path / "instrument").mkdir(exist_ok=True)


def _write_series(session: Path, images: int, *, declared: int) -> None:
    session.mkdir(parents=True, exist_ok=True)
    sources = sorted((DATA / "dicom/series/CT_5slice").iterdir())
    for index in range(images):
        dataset = pydicom.dcmread(sources[index % len(sources)])
        dataset.SOPInstanceUID = f"{dataset.SOPInstanceUID}.{index}"
        dataset.InstanceNumber = index + 1
        dataset.AcquisitionNumber = 1
        dataset.ImagesInAcquisition = declared
        dataset.save_as(session / f"slice{index:03d}.dcm")


def _long_idle_daemon(tmp_path: Path, factory: DaemonFactory) -> Daemon:
    """A running daemon whose datasets cannot close on idle within a test (300 s)."""
    _folders(tmp_path)
    daemon = factory(write_config(tmp_path, settle={"quiet_seconds": 0.5, "dataset_idle_seconds": LONG_IDLE})).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    return daemon


def test_a_declared_dicom_acquisition_is_committed_without_waiting_for_idle(
    tmp_path: Path, daemon_factory: DaemonFactory
) -> None:
    daemon = _long_idle_daemon(tmp_path, daemon_factory)
    session = tmp_path / "instrument" / "carol" / "ct1"
    _write_series(session, 7, declared=8)
    bag = tmp_path / "archive/TEST-SCOPE-01/carol/ct1"
    wait_for(lambda: daemon.status()["files"]["hashed"] == 7, what="7 slices hashed", timeout=60)

    def reason() -> str:
        datasets = daemon.status()["datasets"]
        return str(datasets[0].get("open_reason") or "") if datasets else ""

    wait_for(lambda: "waiting for 1 of 8 instances" in reason(), what="status says what is missing", timeout=30)
    assert not bag_committed(bag)
    _write_series(session, 8, declared=8)  # the last slice arrives (the others are rewritten unchanged)
    sidecar = wait_for_revision(bag, 1, timeout=60)
    assert sidecar["completeness"]["decided_by"] == "declared"
    assert {"kind": "dicom-acquisition", "declared": 8, "found": 8, "unit": "instances"} in sidecar["completeness"][
        "declared"
    ]
    assert sidecar["dataset"]["complete"] is True
    assert len(sidecar["files"]) == 8
    bagit.Bag(str(bag)).validate()
    assert daemon.stop() == 0


def test_an_ome_fileset_is_committed_as_soon_as_its_last_member_is_whole(
    tmp_path: Path, daemon_factory: DaemonFactory
) -> None:
    daemon = _long_idle_daemon(tmp_path, daemon_factory)
    copy_sample("ome-tiff/multifile-master", tmp_path / "instrument" / "dave")
    sidecar = wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/dave/multifile-master", 1, timeout=60)
    assert sidecar["completeness"]["decided_by"] == "declared"
    assert sidecar["completeness"]["declared"] == [{"kind": "ome-fileset", "declared": 5, "found": 5, "unit": "files"}]
    assert daemon.stop() == 0


def _truncated_config(tmp_path: Path, malformed: str, grace: float) -> Path:
    _folders(tmp_path)
    settle = {"quiet_seconds": 0.5, "dataset_idle_seconds": 1.0, "truncated_grace_seconds": grace}
    watch = [{"path": str(tmp_path / "instrument"), "dataset": "{operator}/{session}", "malformed": malformed}]
    return write_config(tmp_path, settle=settle, watch=watch)


def _started(tmp_path: Path, factory: DaemonFactory, malformed: str, session: str) -> tuple[Daemon, Path]:
    """A daemon whose truncated files wait 1 s, then follow *malformed*; and its session folder."""
    daemon = factory(_truncated_config(tmp_path, malformed, 1.0)).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    return daemon, tmp_path / "instrument" / session


def _incomplete(daemon: Daemon) -> list[dict[str, Any]]:
    report = daemon.status()
    return list(report.get("incomplete_files") or []) if report["agent"]["running"] else []


def test_a_truncated_file_waits_visibly_and_settles_once_it_is_whole(
    tmp_path: Path, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(_truncated_config(tmp_path, "harvest", LONG_IDLE)).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    session = tmp_path / "instrument" / "erin" / "mr1"
    copy_sample("dicom/single/CT_small.dcm", session)
    whole = (DATA / "dicom/single/MR_small.dcm").read_bytes()
    (session / "MR_small.dcm").write_bytes(whole[:-1000])  # the writer stopped 1,000 bytes short
    incomplete = wait_for(lambda: _incomplete(daemon), what="the cut file shown as incomplete", timeout=30)
    assert incomplete[0]["path"].endswith("erin/mr1/MR_small.dcm")
    assert incomplete[0]["detail"].startswith("pixel data ends ")  # 1,000 bytes cut, trailing elements included
    bag = tmp_path / "archive/TEST-SCOPE-01/erin/mr1"
    stays_false(lambda: bag_committed(bag), 2, "dataset committed while a member was truncated")
    (session / "MR_small.dcm").write_bytes(whole)  # the writer resumed and finished
    sidecar = wait_for_revision(bag, 1, timeout=60)
    assert sidecar["dataset"]["complete"] is True
    assert sidecar["completeness"]["truncated"] == []
    assert len(sidecar["files"]) == 2
    assert daemon.stop() == 0


@pytest.mark.parametrize("policy", ["quarantine", "harvest"])
def test_after_its_grace_a_truncated_file_follows_the_malformed_policy_never_complete(
    tmp_path: Path, daemon_factory: DaemonFactory, policy: str
) -> None:
    """quarantine: kept on the instrument and listed missing; harvest: shipped, with its
    verdict, a warning and the dataset shown incomplete. Never ``complete: true``."""
    daemon, session = _started(tmp_path, daemon_factory, policy, "frank/mr2")
    copy_sample("dicom/single/CT_small.dcm", session)
    copy_sample("malformed/dicom/MR_truncated.dcm", session)
    bag = tmp_path / "archive/TEST-SCOPE-01/frank/mr2"
    sidecar = wait_for_revision(bag, 1, timeout=60)
    assert sidecar["dataset"]["complete"] is False
    shipped = [item["source_path"] for item in sidecar["files"]]
    if policy == "quarantine":
        assert shipped == ["frank/mr2/CT_small.dcm"]
        (missing,) = sidecar["missing"]
        assert missing["source_path"] == "frank/mr2/MR_truncated.dcm"
        assert "truncated: pixel data ends 62 bytes early" in missing["reason"]
        assert (session / "MR_truncated.dcm").exists()  # kept on the instrument
    else:
        assert shipped == ["frank/mr2/CT_small.dcm", "frank/mr2/MR_truncated.dcm"]
        assert sidecar["completeness"]["truncated"] == [
            {"path": "data/MR_truncated.dcm", "detail": "pixel data ends 62 bytes early"}
        ]
        entry = next(item for item in sidecar["files"] if item["path"] == "data/MR_truncated.dcm")
        assert entry["metadata"]["completeness"]["state"] == "truncated"
        assert any("truncated file(s) shipped as they are" in warning for warning in sidecar["warnings"])
    bagit.Bag(str(bag)).validate()
    report = daemon.status()
    assert report["datasets"][0]["state"] == "incomplete"
    assert daemon.stop() == 0


def test_harvest_inspect_says_a_truncated_file_is_truncated_and_exits_1(tmp_path: Path) -> None:
    whole = DATA / "dicom/single/CT_small.dcm"
    cut = tmp_path / "CT_cut.dcm"
    cut.write_bytes(whole.read_bytes()[:-500])
    result = subprocess.run(
        harvest_command("inspect", str(whole), str(cut)), capture_output=True, text=True, env=subprocess_env()
    )
    assert result.returncode == 1
    shown = " ".join(result.stdout.split())
    assert "truncated: pixel data ends 362 bytes early" in shown  # 500 cut; 138 were elements after the pixels
    assert "Traceback" not in result.stderr
    assert (
        subprocess.run(harvest_command("inspect", str(whole)), capture_output=True, env=subprocess_env()).returncode
        == 0
    )

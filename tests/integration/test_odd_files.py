"""Odd files never hold the agent: symbolic links (followed), named pipes, unlistable folders."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest

from tests.helpers import random_file, wait_for, write_config
from tests.integration.conftest import Daemon, harvest_json, run_scan, wait_for_revision

DaemonFactory = Callable[[Path], Daemon]


def test_followed_symlinks_harvest_each_real_folder_once_and_links_by_their_target(tmp_path: Path) -> None:
    instrument = tmp_path / "instrument"
    # Names chosen so that the link is met before its target in any listing order check.
    (instrument / "bob" / "s2").mkdir(parents=True)
    (instrument / "bob" / "s2" / "bob-data.tif").write_bytes(b"bob's acquisition")
    (instrument / "alice" / "s1").mkdir(parents=True)
    (instrument / "alice" / "s1" / "real.tif").write_bytes(b"alice's acquisition")
    (instrument / "alice" / "s1" / "alias.tif").symlink_to(instrument / "alice" / "s1" / "real.tif")
    (instrument / "alice" / "a-link-to-bob").symlink_to(instrument / "bob" / "s2")
    (instrument / "aaa").symlink_to(instrument / "bob")  # an operator folder reached through a link
    (tmp_path / "archive").mkdir()
    config = write_config(
        tmp_path, watch=[{"path": str(instrument), "dataset": "{operator}/{session}", "follow_symlinks": True}]
    )

    result = run_scan(config)

    assert result.returncode == 0, result.stdout + result.stderr
    archive = tmp_path / "archive/TEST-SCOPE-01"
    bags = sorted(str(path.parent.relative_to(archive)) for path in archive.rglob("bagit.txt"))
    assert bags == ["alice/s1", "bob/s2"], "each real folder is one dataset; links to folders add none"
    for bag in bags:
        bagit.Bag(str(archive / bag)).validate()
    alice = harvest_json(archive / "alice/s1")
    assert alice["dataset"]["complete"] is True
    assert {entry["path"] for entry in alice["files"]} == {"data/real.tif", "data/alias.tif"}
    assert (archive / "alice/s1/data/alias.tif").read_bytes() == b"alice's acquisition"
    assert harvest_json(archive / "bob/s2")["files"][0]["source_path"] == "bob/s2/bob-data.tif"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_settling_file_swapped_for_a_named_pipe_blocks_nothing(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    (tmp_path / "archive").mkdir()
    session = tmp_path / "instrument" / "alice" / "s1"
    session.mkdir(parents=True)
    config = write_config(tmp_path, settle={"quiet_seconds": 3.0, "dataset_idle_seconds": 1.0})
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)

    (session / "kept.tif").write_bytes(b"kept")
    swapped = session / "swapped.tif"
    swapped.write_bytes(b"will become a pipe")
    wait_for(lambda: daemon.status()["files"]["settling"] >= 2, what="both files seen", timeout=20)
    swapped.unlink()
    os.mkfifo(swapped)  # nobody ever writes it: a blocking open would hang the agent
    other = tmp_path / "instrument" / "bob" / "s9"
    other.mkdir(parents=True)
    (other / "x.tif").write_bytes(b"other dataset")

    first = wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/alice/s1", 1, timeout=60)
    assert [entry["path"] for entry in first["files"]] == ["data/kept.tif"]
    wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/bob/s9", 1, timeout=60)
    assert daemon.stop(timeout=30) == 0


def test_an_unlistable_subfolder_makes_its_dataset_incomplete_and_status_say_so(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "alice" / "s1"
    (session / "locked").mkdir(parents=True)
    (session / "locked" / "hidden.tif").write_bytes(b"cannot be listed")
    (session / "seen.tif").write_bytes(b"seen")
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    # Root ignores modes, so the test makes the folder unlistable as the agent sees it:
    # a path longer than the OS allows is one real way; a sitecustomize hook is another.
    # Here the agent runs with a hook that refuses to list that one folder (EACCES).
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import errno, os\n"
        "_scandir = os.scandir\n"
        "def scandir(path='.'):\n"
        "    if os.fspath(path).endswith('locked'):\n"
        "        raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(path))\n"
        "    return _scandir(path)\n"
        "os.scandir = scandir\n"
    )
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{hook}{os.pathsep}{env_path}" if env_path else str(hook)
    try:
        result = run_scan(config)
        status = Daemon(config, tmp_path / "unused.log").harvest("status", "--json")
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            del os.environ["PYTHONPATH"]

    assert result.returncode == 1, result.stdout + result.stderr
    assert "locked" in result.stdout
    bag = tmp_path / "archive/TEST-SCOPE-01/alice/s1"
    bagit.Bag(str(bag)).validate()
    sidecar = harvest_json(bag)
    assert sidecar["dataset"]["complete"] is False
    assert [item["source_path"] for item in sidecar["missing"]] == ["alice/s1/locked/"]
    assert "cannot list folder" in sidecar["missing"][0]["reason"]
    assert "Harvest-Missing-Files: 1" in (bag / "bag-info.txt").read_text()
    report = json.loads(status.stdout)
    dataset = next(item for item in report["datasets"] if item["key"] == "alice/s1")
    assert dataset["state"] == "incomplete"
    assert report["unreadable"]["count"] == 1 and report["health"]["state"] != "healthy"

    # The folder is removed: it is no gap any more, and nothing else is left unreadable.
    import shutil

    shutil.rmtree(session / "locked")
    assert run_scan(config).returncode == 0
    after = json.loads(Daemon(config, tmp_path / "unused.log").harvest("status", "--json").stdout)
    assert after["unreadable"]["count"] == 0


def test_a_forced_close_lists_the_still_growing_file_as_missing(tmp_path: Path, daemon_factory: DaemonFactory) -> None:
    import threading

    (tmp_path / "archive").mkdir()
    session = tmp_path / "instrument" / "alice" / "s1"
    session.mkdir(parents=True)
    config = write_config(
        tmp_path, settle={"quiet_seconds": 1.0, "dataset_idle_seconds": 30, "dataset_max_open_seconds": 4}
    )
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, what="agent running", timeout=20)
    (session / "done.tif").write_bytes(b"finished")
    growing = session / "growing.raw"
    stop = threading.Event()

    def write_forever() -> None:
        with growing.open("ab") as stream:
            while not stop.is_set():
                stream.write(b"x" * 4096)
                stream.flush()
                stop.wait(0.2)

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    bag = tmp_path / "archive/TEST-SCOPE-01/alice/s1"
    try:
        first = wait_for_revision(bag, 1, timeout=60)
    finally:
        stop.set()
        writer.join()
    bagit.Bag(str(bag)).validate()
    assert first["dataset"]["complete"] is False
    assert [item["source_path"] for item in first["missing"]] == ["alice/s1/growing.raw"]
    assert "closed by force" in first["missing"][0]["reason"]
    assert [entry["path"] for entry in first["files"]] == ["data/done.tif"]
    assert "Harvest-Missing-Files: 1" in (bag / "bag-info.txt").read_text()
    # Once the writer stops, the file settles and a new revision holds it: complete.
    second = wait_for_revision(bag, 2, timeout=60)
    assert second["dataset"]["complete"] is True and second["missing"] == []
    assert (bag / "data/growing.raw").read_bytes() == growing.read_bytes()
    assert daemon.stop() == 0


@pytest.mark.parametrize("change", ["replaced", "truncated"])
def test_a_source_changed_mid_copy_leaves_no_partial_copy_behind(
    change: str, tmp_path: Path, daemon_factory: DaemonFactory
) -> None:
    (tmp_path / "archive").mkdir()
    source = random_file(tmp_path / "instrument/alice/s1/stack.raw", 24 << 20)
    session = source.parent
    destination = {"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive"),
                   "bandwidth": "4MiB/s", "checkpoint_bytes": 1 << 20}  # fmt: skip
    config = write_config(tmp_path, destinations=[destination])
    daemon = daemon_factory(config).start()
    # Running first: the journal file exists a moment before its tables do.
    wait_for(
        lambda: daemon.running()
        and daemon.journal_rows(tmp_path, "SELECT 1 FROM deliveries WHERE state = 'sending' AND offset_bytes > 0"),
        timeout=60, what="the copy is under way",
    )  # fmt: skip
    partials = tmp_path / "archive" / ".harvest-partial"
    assert list(partials.glob("*.partial")), "the copy goes through a partial file"
    new_content = os.urandom(1 << 20)
    if change == "replaced":
        replacement = session / "stack.raw.new"
        replacement.write_bytes(new_content)
        replacement.replace(source)
    else:
        with source.open("r+b") as stream:
            stream.truncate(1 << 20)
        new_content = source.read_bytes()
    bag = tmp_path / "archive/TEST-SCOPE-01/alice/s1"
    wait_for(lambda: bag_has(bag, new_content), timeout=90, what="the new version archived")
    wait_for(lambda: not list(partials.glob("*.partial")), timeout=30, what="no partial copy left")
    assert daemon.stop() == 0
    bagit.Bag(str(bag)).validate()


def bag_has(bag: Path, content: bytes) -> bool:
    if not (bag / "tagmanifest-sha256.txt").exists():
        return False
    try:
        return (bag / "data/stack.raw").read_bytes() == content
    except FileNotFoundError:
        return False

"""Operator commands against a real daemon: pause/resume/retry/rescan, status during a
transfer, upload windows, watch in a pseudo-terminal, and the exit codes of status."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pexpect

from tests.helpers import harvest_command, random_file, stays_false, subprocess_env, wait_for, write_config
from tests.integration.conftest import Daemon, bag_committed, harvest_json, run_scan, wait_for_revision

MIB = 1 << 20
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Roots polled once an hour and rescanned once an hour: after the start-up scan, the
# daemon only finds a new file when told to (harvest rescan / retry).
QUIET_ROOT = {"polling": True, "polling_interval_seconds": 3600, "dataset": "{operator}/{session}"}


def _start(daemon_factory: Callable[[Path], Daemon], config: Path) -> Daemon:
    (config.parent / "archive").mkdir(exist_ok=True)
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, timeout=30, what="daemon running")
    wait_for(lambda: daemon.harvest("rescan").returncode == 0, timeout=30, what="control channel")
    return daemon


def test_pause_holds_uploads_while_hashing_goes_on_and_resume_delivers(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    config = write_config(
        tmp_path, watch=[{"path": str(tmp_path / "instrument"), **QUIET_ROOT}], scan={"interval_seconds": 3600}
    )
    (tmp_path / "instrument").mkdir()
    daemon = _start(daemon_factory, config)

    paused = daemon.harvest("pause", "archive")
    assert paused.returncode == 0 and "paused archive" in paused.stdout
    unknown = daemon.harvest("pause", "tape")
    assert unknown.returncode == 1 and unknown.stderr.startswith("harvest: unknown destination 'tape'")

    random_file(tmp_path / "instrument/alice/run1/image.raw", 3 * MIB)
    # Nothing tells the daemon about the file (hourly polling) until a rescan.
    stays_false(lambda: daemon.status()["files"]["hashed"], 2.0, "a file was found without a rescan")
    rescan = daemon.harvest("rescan")
    assert rescan.returncode == 0 and "rescanning" in rescan.stdout
    wait_for(lambda: daemon.status()["files"]["hashed"] == 1, timeout=30, what="hashed while paused")

    bag = tmp_path / "archive/TEST-SCOPE-01/alice/run1"
    report = wait_for(
        lambda: (r := daemon.status())["destinations"][0]["hold"] == "paused by operator" and r,
        timeout=10,
        what="pause shown in status",
    )
    assert report["health"]["state"] == "degraded"
    assert any("paused by an operator" in reason for reason in report["health"]["reasons"])
    stays_false(lambda: bag.exists(), 2.0, "a paused destination received data")

    resumed = daemon.harvest("resume")
    assert resumed.returncode == 0
    wait_for(lambda: bag_committed(bag), timeout=30, what="bag after resume")
    final = wait_for(lambda: (r := daemon.status())["health"]["code"] == 0 and r, timeout=10, what="healthy")
    assert final["datasets"][0]["state"] == "committed"

    assert daemon.stop() == 0
    gone = daemon.harvest("pause")
    assert gone.returncode == 2 and "no agent is running" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_pause_stops_a_large_copy_at_a_checkpoint_and_resume_continues_it(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    destination = {"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive"),
                   "bandwidth": "8MiB/s", "checkpoint_bytes": 4 * MIB}  # fmt: skip
    config = write_config(tmp_path, destinations=[destination])
    source = random_file(tmp_path / "instrument/bob/run2/stack.raw", 40 * MIB)
    daemon = _start(daemon_factory, config)

    def in_flight() -> int:
        report = daemon.status()
        return report["in_flight"][0]["bytes_done"] if report["in_flight"] else 0

    wait_for(lambda: in_flight() >= 4 * MIB, timeout=60, what="copy under way")
    assert daemon.harvest("pause").returncode == 0
    staging = tmp_path / "archive/.harvest-partial"

    def staged_bytes() -> int:
        return sum(path.stat().st_size for path in staging.rglob("*") if path.is_file())

    wait_for(lambda: daemon.upload_held(tmp_path, "archive"), timeout=20, what="copy held")
    held_at = staged_bytes()
    assert 0 < held_at < source.stat().st_size
    assert daemon.harvest("resume").returncode == 0
    bag = tmp_path / "archive/TEST-SCOPE-01/bob/run2"
    wait_for(lambda: bag_committed(bag), timeout=60, what="bag after resume")
    resumed = daemon.journal_rows(tmp_path, "SELECT resumed_from_bytes FROM deliveries")
    assert resumed[0][0] and resumed[0][0] > 0, "the copy restarted from zero instead of its checkpoint"


def test_retry_brings_back_a_file_that_failed(tmp_path: Path, daemon_factory: Callable[[Path], Daemon]) -> None:
    config = write_config(
        tmp_path, watch=[{"path": str(tmp_path / "instrument"), **QUIET_ROOT}], scan={"interval_seconds": 3600}
    )
    (tmp_path / "instrument").mkdir()
    daemon = _start(daemon_factory, config)
    assert daemon.harvest("pause").returncode == 0
    session = tmp_path / "instrument/carol/run3"
    random_file(session / "keep.raw", MIB)
    lost = random_file(session / "lost.raw", MIB)
    saved = lost.read_bytes()
    assert daemon.harvest("rescan").returncode == 0
    wait_for(lambda: daemon.status()["files"]["hashed"] == 2, timeout=30, what="both hashed")
    lost.unlink()  # vanishes between hashing and sending
    assert daemon.harvest("resume").returncode == 0

    report = wait_for(
        lambda: (r := daemon.status())["files"]["failed"] == 1 and r["datasets"][0]["committed"] and r,
        timeout=30,
        what="file failed and dataset committed without it",
    )
    assert report["health"]["state"] == "down" and report["datasets"][0]["state"] == "failed"
    bag = tmp_path / "archive/TEST-SCOPE-01/carol/run3"
    assert [item["source_path"] for item in harvest_json(bag)["missing"]] == ["carol/run3/lost.raw"]

    still_missing = daemon.harvest("retry", "--failed")
    assert still_missing.returncode == 0 and "still missing" in still_missing.stdout

    lost.write_bytes(saved)  # the operator restores the file; polling is hourly, so only retry finds it
    stays_false(lambda: daemon.status()["files"]["failed"] == 0, 2.0, "found without retry")
    retried = daemon.harvest("retry", str(lost))
    assert retried.returncode == 0 and "settled and hashed again" in retried.stdout
    data = wait_for_revision(bag, 2)
    assert data["missing"] == []
    assert (bag / "data/lost.raw").read_bytes() == saved
    wait_for(lambda: daemon.status()["health"]["code"] == 0, timeout=10, what="healthy after retry")
    nothing = daemon.harvest("retry", "no/such/file")
    assert nothing.returncode == 1 and "nothing failed matching" in nothing.stderr


def test_status_during_a_transfer_shows_progress_rate_and_eta(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    destination = {"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive"),
                   "bandwidth": "Mon-Sun 00:00-24:00 6MiB/s; off"}  # fmt: skip
    config = write_config(tmp_path, destinations=[destination])
    random_file(tmp_path / "instrument/dave/run4/big.raw", 48 * MIB)
    daemon = _start(daemon_factory, config)

    def mid_transfer() -> dict[str, object] | None:
        report = daemon.status()
        datasets = report["datasets"]
        if not datasets or not report["in_flight"]:
            return None
        dataset = datasets[0]
        ok = (dataset["state"] == "uploading" and 0 < dataset["bytes_done"] < dataset["bytes"]
              and dataset["rate_bytes_per_second"] > 0 and dataset["eta_seconds"])  # fmt: skip
        return report if ok else None

    report = wait_for(mid_transfer, timeout=30, interval=0.3, what="progress with rate and ETA")
    dataset = report["datasets"][0]  # type: ignore[index]
    assert dataset["operator"] == "dave" and dataset["files"] == 1 and dataset["files_done"] == 0
    assert 2 * MIB < dataset["rate_bytes_per_second"] < 12 * MIB  # the timetable says 6 MiB/s
    assert report["oldest_unsafe"]["path"].endswith("big.raw")  # type: ignore[index]
    text = daemon.harvest("status")
    assert text.returncode == 0 and "uploading" in text.stdout and "dave/run4" in text.stdout
    wait_for(lambda: daemon.status()["datasets"][0]["state"] == "committed", timeout=60, what="committed")
    final = daemon.status()
    assert final["datasets"][0]["files_done"] == 1 and final["oldest_unsafe"] is None


def test_uploads_wait_for_their_window_but_hashing_does_not(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    tomorrow = DAY_NAMES[(datetime.now() + timedelta(days=1)).weekday()]
    destination = {"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive"),
                   "upload_windows": tomorrow}  # fmt: skip
    config = write_config(tmp_path, destinations=[destination])
    random_file(tmp_path / "instrument/erin/run5/a.raw", MIB)
    daemon = _start(daemon_factory, config)
    report = wait_for(
        lambda: (r := daemon.status())["files"]["hashed"] == 1 and r["destinations"][0]["hold"] and r,
        timeout=30,
        what="hashed, upload held",
    )
    assert report["destinations"][0]["hold"] == "outside upload window"
    assert report["health"]["state"] == "healthy"  # waiting for the window is normal
    stays_false(lambda: (tmp_path / "archive/TEST-SCOPE-01").exists(), 2.0, "uploaded outside its window")


def test_watch_renders_in_a_small_terminal_and_exits_on_ctrl_c(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    config = write_config(tmp_path)
    random_file(tmp_path / "instrument/frank/run6/a.raw", MIB)
    _start(daemon_factory, config)
    wait_for(lambda: bag_committed(tmp_path / "archive/TEST-SCOPE-01/frank/run6"), timeout=30, what="bag")
    command = harvest_command("watch", "--interval", "0.5", "--config", str(config))
    env = {**subprocess_env(), "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    child = pexpect.spawn(command[0], command[1:], dimensions=(24, 80), env=env, encoding="utf-8", timeout=30)
    try:
        child.expect("TEST-SCOPE-01")
        child.expect("frank/run6")
        child.expect("Ctrl-C")
        child.expect("Ctrl-C")  # the footer again: the screen has been refreshed
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "Traceback" not in (child.before or "")


def test_status_exit_codes_follow_health(tmp_path: Path, daemon_factory: Callable[[Path], Daemon]) -> None:
    config = write_config(tmp_path)
    (tmp_path / "instrument").mkdir()
    daemon = _start(daemon_factory, config)
    assert daemon.harvest("status").returncode == 0
    assert daemon.harvest("pause").returncode == 0
    wait_for(lambda: daemon.harvest("status").returncode == 1, timeout=10, what="degraded while paused")
    assert daemon.stop() == 0
    down = daemon.harvest("status")
    assert down.returncode == 2 and "agent DOWN since" in down.stdout
    shutil.rmtree(tmp_path / "state")
    missing = daemon.harvest("status")
    assert missing.returncode == 2 and missing.stderr.startswith("harvest:") and "Traceback" not in missing.stderr
    assert sys.executable  # the commands above ran with the test interpreter


def test_a_manual_scan_does_not_wait_for_the_upload_window(tmp_path: Path) -> None:
    tomorrow = DAY_NAMES[(datetime.now() + timedelta(days=1)).weekday()]
    destination = {"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive"),
                   "upload_windows": tomorrow}  # fmt: skip
    config = write_config(tmp_path, destinations=[destination])
    (tmp_path / "archive").mkdir()
    random_file(tmp_path / "instrument/gail/run8/a.raw", MIB)
    result = run_scan(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert bag_committed(tmp_path / "archive/TEST-SCOPE-01/gail/run8")

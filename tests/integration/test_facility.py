"""Facility controls against a real daemon: the bandwidth limit on a 200 MB copy, the
acquisition guard, the Prometheus endpoint, doctor, and the shipped config examples."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import harvest_command, random_file, subprocess_env, wait_for, write_config
from tests.integration.conftest import Daemon, bag_committed
from tests.integration.servers import TUS_TOKEN, free_port, start_tus

MIB = 1 << 20
EXAMPLES = Path(__file__).parents[2] / "config-examples"


def test_the_bandwidth_limit_holds_within_ten_percent_on_200_mb(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    limit = 20 * MIB
    destination = {"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive"),
                   "bandwidth": "20MiB/s"}  # fmt: skip
    config = write_config(tmp_path, destinations=[destination])
    (tmp_path / "archive").mkdir()
    source = random_file(tmp_path / "instrument/gina/run7/volume.raw", 200_000_000)
    daemon = daemon_factory(config).start()

    def delivery_state() -> str | None:
        try:
            rows = daemon.journal_rows(tmp_path, "SELECT state FROM deliveries")
        except Exception:  # the journal may not exist yet
            return None
        return str(rows[0][0]) if rows else None

    wait_for(lambda: delivery_state() == "sending", timeout=60, interval=0.02, what="copy started")
    started = time.monotonic()
    wait_for(lambda: delivery_state() == "verified", timeout=60, interval=0.02, what="copy verified")
    elapsed = time.monotonic() - started
    rate = source.stat().st_size / elapsed
    assert 0.9 * limit <= rate <= 1.1 * limit, f"{rate / MIB:.2f} MiB/s against a 20 MiB/s limit"


class _Writer(threading.Thread):
    """An acquisition: appends to a file every 0.2 s until stopped."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.halt = threading.Event()

    def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            while not self.halt.wait(0.2):
                handle.write(os.urandom(64 << 10))
                handle.flush()


def test_the_acquisition_guard_throttles_while_a_file_grows_and_releases_after(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    config = write_config(
        tmp_path,
        settle={"quiet_seconds": 1.0, "dataset_idle_seconds": 1.5},
        acquisition_guard={"bandwidth": "1MiB/s", "active_seconds": 3},
    )
    (tmp_path / "archive").mkdir()
    (tmp_path / "instrument").mkdir()
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, timeout=30, what="daemon running")
    writer = _Writer(tmp_path / "instrument/hana/live/stack.tif")
    writer.start()
    try:
        guard = wait_for(lambda: (g := daemon.status()["guard"])["active"] and g, timeout=30, what="guard on")
        assert guard["path"].endswith("stack.tif") and guard["rate_bytes_per_second"] == MIB
        random_file(tmp_path / "instrument/hana/done/frames.raw", 40 * MIB)
        staging = tmp_path / "archive/.harvest-partial"

        def staged() -> int:
            return sum(path.stat().st_size for path in staging.rglob("*") if path.is_file())

        wait_for(lambda: staged() > 0, timeout=30, what="upload started under the guard")
        before, started = staged(), time.monotonic()
        wait_for(lambda: staged() >= before + 3 * MIB, timeout=30, what="3 MiB more under the guard")
        throttled = (staged() - before) / (time.monotonic() - started)
        assert throttled < 2 * MIB, f"{throttled / MIB:.2f} MiB/s while the guard allows 1 MiB/s"
        assert daemon.status()["guard"]["active"]
    finally:
        writer.halt.set()
        writer.join()
    released = time.monotonic()
    wait_for(lambda: not daemon.status()["guard"]["active"], timeout=15, what="guard off")
    bag = tmp_path / "archive/TEST-SCOPE-01/hana/done"
    wait_for(lambda: bag_committed(bag), timeout=30, what="bag after the guard released")
    # At the guard's 1 MiB/s the remaining ~35 MiB would need over half a minute.
    assert time.monotonic() - released < 25


def test_metrics_parse_and_match_the_journal(tmp_path: Path, daemon_factory: Callable[[Path], Daemon]) -> None:
    port = free_port()
    config = write_config(tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
    (tmp_path / "archive").mkdir()
    for index in range(3):
        random_file(tmp_path / f"instrument/ivan/run{index}/image.raw", (index + 1) * MIB)
    (tmp_path / "instrument/loose.txt").write_text("outside any dataset")
    daemon = daemon_factory(config).start()
    for index in range(3):
        bag = tmp_path / f"archive/TEST-SCOPE-01/ivan/run{index}"
        wait_for(functools.partial(bag_committed, bag), timeout=60, what=str(bag))

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    delivered_bytes, delivered_files = daemon.journal_rows(
        tmp_path,
        "SELECT COALESCE(SUM(f.size_bytes), 0), COUNT(*) FROM deliveries d JOIN files f ON f.id = d.file_id"
        " WHERE d.state = 'verified' AND d.destination = 'archive'",
    )[0]
    assert samples[("harvest_delivered_bytes_total", (("destination", "archive"),))] == delivered_bytes == 6 * MIB
    assert samples[("harvest_delivered_files_total", (("destination", "archive"),))] == delivered_files == 3
    for state, count in daemon.journal_rows(tmp_path, "SELECT state, COUNT(*) FROM files GROUP BY state"):
        assert samples[("harvest_files", (("state", state),))] == count
    assert samples.get(("harvest_queue_files", (("destination", "archive"),)), 0) == 0  # nothing waits
    assert samples[("harvest_agent_up", ())] == 1
    assert samples[("harvest_destination_up", (("destination", "archive"),))] == 1
    assert samples[("harvest_acquisition_guard_active", ())] == 0
    info = [labels for name, labels in samples if name == "harvest_agent_info"]
    assert dict(info[0]) == {"instrument_id": "TEST-SCOPE-01", "version": daemon_version()}

    status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10).read())
    assert status["agent"]["running"] and status["health"]["state"] == "healthy"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert missing.value.code == 404

    # A failure is counted by class and the counter survives restarts (it lives in the journal).
    assert daemon.stop() == 0
    shutil.rmtree(tmp_path / "archive")
    random_file(tmp_path / "instrument/ivan/run9/image.raw", MIB)
    daemon.start()
    wait_for(lambda: daemon.status()["destinations"][0]["state"] == "paused", timeout=30, what="paused")

    def transient_failures() -> float:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == "harvest_failures_total" and sample.labels == {"class": "transient"}:
                    return sample.value
        return 0.0

    assert wait_for(transient_failures, timeout=15, what="failure counter") >= 1


def daemon_version() -> str:
    from agent import __version__

    return __version__


@pytest.fixture
def tus_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    server = start_tus(tmp_path)
    yield server.destination
    server.stop()


def _doctor(config: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        harvest_command("doctor", "--config", str(config)),
        capture_output=True,
        text=True,
        env={**subprocess_env(), **environment},
        timeout=120,
    )


def test_doctor_passes_a_good_setup_and_names_each_problem(tmp_path: Path, tus_server: dict[str, Any]) -> None:
    (tmp_path / "instrument").mkdir()
    (tmp_path / "archive").mkdir()
    destinations = [{"name": "archive", "type": "filesystem", "path": str(tmp_path / "archive")}, tus_server]
    config = write_config(tmp_path, destinations=destinations)

    good = _doctor(config, HARVEST_CREDENTIAL_TUS_TOKEN=TUS_TOKEN)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "[ok]   destination facility: created, sent" in good.stdout
    assert "[ok]   clock vs facility" in good.stdout
    assert not list((tmp_path / "tus-store").glob("*")), "the probe upload was left at the server"
    assert not list((tmp_path / "archive").rglob("doctor-*")), "the probe file was left in the archive"

    wrong = _doctor(config, HARVEST_CREDENTIAL_TUS_TOKEN="not-the-token")
    assert wrong.returncode == 1
    assert "[FAIL] destination facility: credentials not accepted" in wrong.stdout
    assert "harvest login tus-token" in wrong.stdout
    assert "not-the-token" not in wrong.stdout + wrong.stderr

    closed = {**tus_server, "url": f"http://127.0.0.1:{free_port()}/files/"}
    unreachable = _doctor(write_config(tmp_path, destinations=[closed]), HARVEST_CREDENTIAL_TUS_TOKEN=TUS_TOKEN)
    assert unreachable.returncode == 1
    assert "[FAIL] destination facility: unreachable" in unreachable.stdout

    (tmp_path / "a-file").write_text("not a folder")
    roots = [{"path": str(tmp_path / "nowhere"), "name": "gone"}, {"path": str(tmp_path / "a-file"), "name": "file"}]
    bad_roots = _doctor(write_config(tmp_path, watch=roots))
    assert bad_roots.returncode == 1
    assert f"[FAIL] watched root {tmp_path / 'nowhere'}: does not exist" in bad_roots.stdout
    assert f"[FAIL] watched root {tmp_path / 'a-file'}: is not a folder" in bad_roots.stdout
    assert "Traceback" not in bad_roots.stderr


def test_doctor_gives_one_line_per_cause_with_the_fix_for_it_and_changes_nothing(
    tmp_path: Path, tus_server: dict[str, Any]
) -> None:
    (tmp_path / "instrument").mkdir()
    no_keyring = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    # No credentials in the config: nothing to say about the keyring. A state dir not
    # there yet is created by the agent, never by a check.
    nas = {"name": "archive", "type": "filesystem", "path": str(tmp_path / "nas")}
    plain = write_config(tmp_path, destinations=[nas])
    result = _doctor(plain, **no_keyring)
    assert "keyring" not in result.stdout, result.stdout
    assert f"[ok]   state dir {tmp_path / 'state'}: does not exist yet" in result.stdout
    assert not (tmp_path / "state").exists(), "doctor created the state dir"
    # A filesystem destination that is not there: the fix is the mount, not the network.
    assert "[FAIL] destination archive: unreachable" in result.stdout
    assert "mount the share or create the folder" in result.stdout and "firewall" not in result.stdout

    # A credential set nowhere: one line, on its destination, saying where to put it.
    unset = _doctor(write_config(tmp_path, destinations=[tus_server]), **no_keyring)
    lines = [line for line in unset.stdout.splitlines() if line.startswith("[FAIL]")]
    assert len(lines) == 1 and "credential 'tus-token' not found" in lines[0], unset.stdout
    assert "not accepted" not in unset.stdout and "keyring:" not in unset.stdout
    assert "HARVEST_CREDENTIAL_TUS_TOKEN" in unset.stdout


# Root reads any file whatever its mode. As root, the doctor runs without the two
# capabilities that grant that (setpriv, from util-linux), so file modes apply to it too.
WITHOUT_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                        "--inh-caps=-dac_override,-dac_read_search"]  # fmt: skip


def test_doctor_reports_a_root_the_agent_user_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "instrument").mkdir(mode=0o000)
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    prefix = WITHOUT_DAC_OVERRIDE if os.geteuid() == 0 else []
    try:
        result = subprocess.run(
            [*prefix, *harvest_command("doctor", "--config", str(config))],
            capture_output=True, text=True, env=subprocess_env(), timeout=120,
        )  # fmt: skip
    finally:
        (tmp_path / "instrument").chmod(0o755)  # let pytest clean up
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"[FAIL] watched root {tmp_path / 'instrument'}: cannot be read by this user" in result.stdout
    assert "[ok]   state dir" in result.stdout  # only the root is unreadable


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_config_example_passes_config_check(example: Path) -> None:
    result = subprocess.run(
        harvest_command("config", "check", str(example)), capture_output=True, text=True, env=subprocess_env()
    )
    assert result.returncode == 0, result.stderr
    assert ": OK (instrument " in result.stdout


def test_config_examples_cover_the_instruments_the_facility_runs() -> None:
    names = {path.stem for path in EXAMPLES.glob("*.yaml")}
    assert {"zeiss-confocal-windows", "micromanager-widefield", "lightsheet-marker", "preclinical-dicom",
            "smb-share-polling"} <= names  # fmt: skip


def test_the_guard_also_sees_a_growing_file_that_is_excluded(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    watch = [{"path": str(tmp_path / "instrument"), "dataset": "{operator}/{session}", "exclude": ["**/*.tmp"]}]
    config = write_config(tmp_path, watch=watch, acquisition_guard={"bandwidth": "1MiB/s", "active_seconds": 3})
    (tmp_path / "archive").mkdir()
    (tmp_path / "instrument").mkdir()
    daemon = daemon_factory(config).start()
    wait_for(daemon.running, timeout=30, what="daemon running")
    writer = _Writer(tmp_path / "instrument/lena/live/acquisition.tmp")  # the way ZEN saves
    writer.start()
    try:
        guard = wait_for(lambda: (g := daemon.status()["guard"])["active"] and g, timeout=30, what="guard on")
        assert guard["path"].endswith("acquisition.tmp")
    finally:
        writer.halt.set()
        writer.join()
    wait_for(lambda: not daemon.status()["guard"]["active"], timeout=15, what="guard off")
    assert daemon.journal_rows(tmp_path, "SELECT COUNT(*) FROM files")[0][0] == 0  # never harvested

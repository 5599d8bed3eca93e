from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helpers import DATA, harvest_command, subprocess_env, wait_for
from tests.integration.servers import authenticating_server, server  # noqa: F401 - fixtures

STATUS_SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "schemas" / "status-1.schema.json").read_text())


class Daemon:
    """``harvest run`` as a subprocess, with its log in a file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            harvest_command("run", "--config", str(self.config_path)),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )
        log.close()
        return self

    def status(self) -> dict[str, Any]:
        """The status report; `harvest status` exits 0, 1 or 2 by health, and the code must match it."""
        result = subprocess.run(
            harvest_command("status", "--json", "--config", str(self.config_path)),
            capture_output=True,
            env=subprocess_env(),
        )
        assert result.returncode in (0, 1, 2), result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        assert report["health"]["code"] == result.returncode
        jsonschema.validate(report, STATUS_SCHEMA)  # the published contract, on every look a test takes
        return report

    def harvest(self, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Another harvest command against this daemon's config (pause, retry, doctor, ...)."""
        return subprocess.run(
            harvest_command(*arguments, "--config", str(self.config_path)),
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=timeout,
        )

    def running(self) -> bool:
        """True once the daemon reports itself running (its journal may not exist yet)."""
        result = subprocess.run(
            harvest_command("status", "--json", "--config", str(self.config_path)),
            capture_output=True,
            env=subprocess_env(),
        )
        return bool(result.stdout) and bool(json.loads(result.stdout)["agent"]["running"])

    def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    @staticmethod
    def journal_rows(directory: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the journal the way an operator's tool would: read-only, beside the daemon."""
        connection = sqlite3.connect(f"{(directory / 'state' / 'journal.sqlite3').as_uri()}?mode=ro", uri=True)
        try:
            return connection.execute(sql, parameters).fetchall()
        finally:
            connection.close()

    def upload_held(self, directory: Path, destination: str) -> bool:
        """Held at a checkpoint: a delivery is half sent, and the destination's worker reported
        the operator's pause and nothing in flight in the same heartbeat."""
        facts = dict(
            self.journal_rows(
                directory,
                "SELECT key, value FROM agent WHERE key IN (?, ?)",
                (f"live.{destination}", f"hold.{destination}"),
            )
        )
        sending = self.journal_rows(directory, "SELECT offset_bytes FROM deliveries WHERE state = 'sending'")
        held = facts.get(f"hold.{destination}") == "paused by operator" and facts.get(f"live.{destination}") == "{}"
        return held and bool(sending)

    def checkpointed(self, directory: Path) -> int:
        """Bytes of the first delivery made durable at the destination so far."""
        rows = self.journal_rows(directory, "SELECT offset_bytes FROM deliveries")
        return int(rows[0][0]) if rows else 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    daemons: list[Daemon] = []

    def make(config_path: Path) -> Daemon:
        daemon = Daemon(config_path, tmp_path / f"daemon-{len(daemons)}.log")
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        if daemon.process is not None:
            daemon.process.kill()
            daemon.process.wait()


def run_scan(config_path: Path) -> subprocess.CompletedProcess[str]:
    """``harvest scan`` as a subprocess, output captured."""
    return subprocess.run(
        harvest_command("scan", "--config", str(config_path)),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )


def copy_sample(relative: str, target: Path) -> Path:
    """Copy a sample file or folder from tests/data to *target* (a folder)."""
    source = DATA / relative
    target.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        destination = target / source.name
        shutil.copytree(source, destination)
        return destination
    return Path(shutil.copy2(source, target))


def bag_committed(bag: Path) -> bool:
    return (bag / "tagmanifest-sha256.txt").exists()


def harvest_json(bag: Path) -> dict[str, Any]:
    return json.loads((bag / "harvest.json").read_text())  # type: ignore[no-any-return]


def wait_for_revision(bag: Path, revision: int, timeout: float = 30) -> dict[str, Any]:
    def committed_revision() -> dict[str, Any] | None:
        if not bag_committed(bag):
            return None
        try:
            data = harvest_json(bag)
        except (OSError, ValueError):
            return None
        return data if data["dataset"]["revision"] >= revision else None

    found: dict[str, Any] = wait_for(committed_revision, timeout=timeout, what=f"{bag} revision {revision}")  # type: ignore[arg-type]
    return found

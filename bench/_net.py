"""What the per-row transport benchmarks share: inputs, the agent end to end, the baselines,
interleaved rounds and the ratio line.

The agent is `harvest scan` as a subprocess, end to end: start-up, settle (quiet 0),
SHA-256 of the source, upload, verification, BagIt commit. Each round delivers to a
fresh place (the server's store is emptied between runs), so nothing is skipped as
"already there": each run writes under names of its own (the agent under an instrument id
of its own, rclone and boto3 under a folder or key of their own); nothing is deleted behind
the servers' backs (rclone's VFS caches listings). Baselines and agent alternate round by
round on the same server.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import paramiko
import requests
import yaml
from boto3.s3.transfer import TransferConfig

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.integration.servers import ACCESS_KEY, SECRET_KEY, TUS_TOKEN, Server, rclone

MIB = 1 << 20


@contextlib.contextmanager
def bench_setup(size_flag: str, default: int, prefix: str) -> Iterator[tuple[argparse.Namespace, Path]]:
    """The arguments every transport benchmark takes (its size, --rounds, --workdir), and a
    fresh work folder under --workdir, removed afterwards."""
    parser = argparse.ArgumentParser()
    parser.add_argument(f"--{size_flag}", type=int, default=default)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix=f"harvest-bench-{prefix}-", dir=arguments.workdir))
    try:
        yield arguments, workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def on_server(
    start: Callable[[Path], Server],
    workdir: Path,
    rounds: int,
    runs: Callable[[Server], dict[str, Callable[[], float]]],
) -> dict[str, list[float]]:
    """Start the server, run *runs(server)* interleaved for *rounds*, stop the server."""
    server = start(workdir)
    try:
        return interleaved(rounds, runs(server))
    finally:
        server.stop()


def big_input(workdir: Path, mib: int) -> tuple[Path, Path]:
    """(watched root, file) for one file of *mib* MiB of random bytes."""
    root = workdir / f"big-{mib}"
    source = root / "bench" / "big" / "volume.raw"
    if not source.exists():
        source.parent.mkdir(parents=True, exist_ok=True)
        block = os.urandom(8 * MIB)
        with source.open("wb") as stream:
            for _ in range(max(1, mib // 8)):
                stream.write(block)
    return root, source


def small_input(workdir: Path, count: int, size: int = 64 << 10) -> Path:
    """A watched root with *count* files of *size* bytes, 1,000 per folder."""
    root = workdir / f"small-{count}"
    if not root.exists():
        for index in range(count):
            folder = root / "bench" / f"s{index // 1000:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"tile_{index:06d}.tif").write_bytes(os.urandom(size))
    return root


_RUNS = itertools.count(1)


def fresh_name(stem: str) -> str:
    """A name no earlier run of this process used (a new bag, key or folder per run)."""
    return f"{stem}-{next(_RUNS)}"


def agent_scan(workdir: Path, server: Server, root: Path, name: str, **destination: Any) -> float:
    state = workdir / f"state-{name}"
    shutil.rmtree(state, ignore_errors=True)
    config = {
        "version": 1, "instrument": {"id": fresh_name("BENCH")}, "state_dir": str(state),
        "watch": [{"path": str(root), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 0, "dataset_idle_seconds": 0},
        "destinations": [{**server.destination, **destination}],
    }  # fmt: skip
    path = workdir / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "agent", "scan", "--config", str(path)], text=True,
                            capture_output=True, env={**os.environ, **server.environment})  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"harvest scan failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - started


def raw_tus(server: Server, source: Path) -> float:
    """One streaming PATCH of the whole file. Its sha256 is announced (computed before the
    clock starts) so that the server's finish hook does the same check as for the agent."""
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


def boto3_upload_file(server: Server, source: Path, part_bytes: int) -> float:
    client = boto3.client("s3", endpoint_url=server.destination["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)  # fmt: skip
    started = time.perf_counter()
    config = TransferConfig(multipart_chunksize=part_bytes, multipart_threshold=part_bytes)
    client.upload_file(str(source), "imaging", f"{fresh_name('raw')}/{source.name}", Config=config)
    return time.perf_counter() - started


def rclone_copy(server: Server, source: Path, workdir: Path, *flags: str) -> float:
    """`rclone copy` of a file or folder to the same server, with rclone's own verification."""
    if server.kind == "rclone-s3":
        remote = {"TYPE": "s3", "PROVIDER": "Other", "ACCESS_KEY_ID": ACCESS_KEY, "SECRET_ACCESS_KEY": SECRET_KEY,
                  "ENDPOINT": server.destination["endpoint_url"]}  # fmt: skip
        target = f"bench:imaging/{fresh_name('rclone')}"
    else:
        key = workdir / "rclone-sftp-key"
        key.write_text(server.environment["HARVEST_CREDENTIAL_NAS_KEY"])
        remote = {"TYPE": "sftp", "HOST": "127.0.0.1", "PORT": str(server.port), "USER": "harvest",
                  "KEY_FILE": str(key)}  # fmt: skip
        target = f"bench:/archive/{fresh_name('rclone')}"
    environment = {**os.environ, **{f"RCLONE_CONFIG_BENCH_{name}": value for name, value in remote.items()}}
    started = time.perf_counter()
    subprocess.run([rclone(), "copy", str(source), target, *flags], check=True, env=environment,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def paramiko_put(server: Server, source: Path) -> float:
    from io import StringIO

    key = paramiko.RSAKey.from_private_key(StringIO(server.environment["HARVEST_CREDENTIAL_NAS_KEY"]))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - local test server
    client.connect("127.0.0.1", port=server.port, username="harvest", pkey=key, allow_agent=False,
                   look_for_keys=False)  # fmt: skip
    started = time.perf_counter()
    client.open_sftp().put(str(source), f"/archive/{fresh_name('raw')}-{source.name}")
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def interleaved(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each run once per round, in turn."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(run())
    return times


def ratio_line(row: str, times: dict[str, list[float]], goals: dict[str, float], unit: str, amount: float) -> str:
    """One Markdown row: the agent's median and each baseline's, the throughput ratio
    agent/baseline against its goal (met or not), and the raw times."""
    agent = statistics.median(times["agent"])
    cells = [row, f"{agent:.2f} s ({amount / agent:,.0f} {unit})"]
    for name, goal in goals.items():
        baseline = statistics.median(times[name])
        ratio = baseline / agent
        verdict = f"goal {goal}x, {'met' if ratio >= goal else 'not met'}" if goal else "no goal"
        cells.append(f"{name} {baseline:.2f} s: **{ratio:.2f}x** ({verdict})")
    raw = "; ".join(f"{name} " + ", ".join(f"{value:.2f}" for value in values) for name, values in times.items())
    return "| " + " | ".join(cells) + f" | {raw} |"

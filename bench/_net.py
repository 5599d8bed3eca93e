"""What the per-row transport benchmarks share: inputs, the agent end to end, the baselines,
interleaved rounds and the ratio line.

The agent is `harvest scan` as a subprocess, end to end: start-up, settle (quiet 0),
SHA-256 of the source, upload, verification, BagIt commit. Each round delivers to a
fresh place (the server's store is emptied between runs), so nothing is skipped as
"already there": each run writes under names of its own (the agent under an instrument id
of its own, rclone and boto3 under a folder or key of their own); nothing is deleted behind
the servers' backs (rclone's VFS caches listings). Baselines and agent alternate round by
round on the same server. Every side is timed as a whole process, as the issue measured:
the agent's `harvest scan`, rclone, and the Python baselines (bench/_clients.py).
"""

from __future__ import annotations

import argparse
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

import yaml

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.integration.servers import ACCESS_KEY, SECRET_KEY, TUS_TOKEN, Server, rclone

MIB = 1 << 20
CLIENTS = Path(__file__).with_name("_clients.py")


@contextlib.contextmanager
def bench_setup(
    size_flag: str, default: int, prefix: str, extra: Callable[[argparse.ArgumentParser], object] = lambda _: None
) -> Iterator[tuple[argparse.Namespace, Path]]:
    """The arguments every transport benchmark takes (its size, --rounds, --workdir, and any
    *extra* adds), and a fresh work folder under --workdir, removed afterwards."""
    parser = argparse.ArgumentParser()
    parser.add_argument(f"--{size_flag}", type=int, default=default)
    extra(parser)
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


def python_client(name: str, *arguments: str) -> float:
    """Seconds of one baseline client of bench/_clients.py, as a whole process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(CLIENTS), name, *arguments], check=True, capture_output=True)
    return time.perf_counter() - started


def raw_tus(server: Server, source: Path) -> float:
    """One streaming PATCH of the whole file. Its sha256 is announced (computed before the
    clock starts) so that the server's finish hook does the same check as for the agent."""
    with source.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return python_client("tus", server.destination["url"], str(source), digest, TUS_TOKEN)


def boto3_upload_file(server: Server, source: Path, part_bytes: int) -> float:
    return python_client("boto3", server.destination["endpoint_url"], str(source),
                         f"{fresh_name('raw')}/{source.name}", str(part_bytes), ACCESS_KEY, SECRET_KEY)  # fmt: skip


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


def paramiko_put(server: Server, source: Path, workdir: Path) -> float:
    key = workdir / "paramiko-key"
    key.write_text(server.environment["HARVEST_CREDENTIAL_NAS_KEY"])
    return python_client("sftp", str(server.port), str(key), str(source), f"/archive/{fresh_name('raw')}-{source.name}")


def interleaved(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each run once per round, in turn, each from a flushed disk (``os.sync()``, untimed).

    Without the flush, a run pays for the previous run's gigabytes still being written back
    (and the agent's own durable writes, which flush the whole filesystem, for all of them):
    the first round was up to 20 % faster than the later ones."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            os.sync()
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

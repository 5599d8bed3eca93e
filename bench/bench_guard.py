"""Acquisition-guard benchmark: does an acquisition slow down while the agent uploads?

A simulated acquisition writes a file into the watched folder as fast as it can (4 MiB
blocks, fsync every 64 MiB), three ways in one run:

1. alone (baseline);
2. while `harvest run` uploads an earlier 1 GiB dataset to a filesystem destination on the
   same disk, with the acquisition guard on (default 10 MiB/s while a file grows);
3. the same with the guard off (`acquisition_guard.enabled: false`).

Reports the writer's throughput in each case and its ratio to the baseline. Goal: with
the guard on, the acquisition keeps >= 0.9x of its baseline speed.

Usage: python bench/bench_guard.py [--write-mib 1024] [--upload-gib 1] [--rounds 3] [--guard-rate 10MiB/s]
       [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import delivery_states, random_file

MIB = 1 << 20
HARVEST = [sys.executable, "-m", "agent"]


def acquire(path: Path, size: int) -> float:
    """Write *size* bytes like a camera stream; returns MiB/s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(4 * MIB)
    started = time.perf_counter()
    with path.open("wb") as handle:
        written = 0
        while written < size:
            handle.write(block)
            written += len(block)
            if written % (64 * MIB) == 0:
                handle.flush()
                os.fsync(handle.fileno())
        handle.flush()
        os.fsync(handle.fileno())
    return size / (time.perf_counter() - started) / MIB


def with_agent(workdir: Path, guard: bool, write_bytes: int, upload_bytes: int, guard_rate: str) -> float:
    for folder in ("src", "dst", "state"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
    (workdir / "dst").mkdir(parents=True)
    random_file(workdir / "src/op/earlier/volume.raw", upload_bytes)
    config = {
        "version": 1,
        "instrument": {"id": "BENCH-GUARD"},
        "state_dir": str(workdir / "state"),
        "watch": [{"path": str(workdir / "src"), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 2, "dataset_idle_seconds": 5},
        "destinations": [{"name": "archive", "type": "filesystem", "path": str(workdir / "dst")}],
        "acquisition_guard": {"enabled": guard, "bandwidth": guard_rate},
    }
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    daemon = subprocess.Popen([*HARVEST, "run", "--config", str(config_path)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while "sending" not in delivery_states(workdir / "state"):
            if time.monotonic() > deadline:
                raise RuntimeError("the upload did not start")
            time.sleep(0.05)
        return acquire(workdir / "src/op/live/stream.raw", write_bytes)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-mib", type=int, default=1024)
    parser.add_argument("--upload-gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--guard-rate", default="10MiB/s", help="acquisition_guard.bandwidth (default: the default)")
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="harvest-bench-guard-"))
    write_bytes = arguments.write_mib * MIB
    upload_bytes = int(arguments.upload_gib * (1 << 30))
    results: dict[str, list[float]] = {"alone": [], "agent, guard on": [], "agent, guard off": []}
    try:
        for _ in range(arguments.rounds):
            results["alone"].append(acquire(workdir / "alone/stream.raw", write_bytes))
            shutil.rmtree(workdir / "alone")
            for name, guard in (("agent, guard on", True), ("agent, guard off", False)):
                results[name].append(with_agent(workdir, guard, write_bytes, upload_bytes, arguments.guard_rate))
        baseline = statistics.median(results["alone"])
        print(f"| acquisition writing {arguments.write_mib} MiB | median | ratio to alone | rounds (MiB/s) |")
        print("|---|---|---|---|")
        for name, values in results.items():
            median = statistics.median(values)
            rounds = ", ".join(f"{value:.0f}" for value in values)
            print(f"| {name} | {median:.0f} MiB/s | {median / baseline:.2f} | {rounds} |")
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Filesystem destination, many small files: the agent end to end (`harvest scan`: settle,
SHA-256, copy, fsync, re-read and verify, BagIt commit) vs `rclone copy --checksum` into
a local folder, interleaved, on the same disk.

Goal: >= 1.0x rclone's files/s and >= 1,500 files/s.
Usage: python bench/bench_fs_small.py [--count 5000] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from _net import bench_setup, small_input

from tests.integration.servers import rclone


def agent(workdir: Path, root: Path, target: Path) -> float:
    config = {
        "version": 1, "instrument": {"id": "BENCH-01"}, "state_dir": str(workdir / "state"),
        "watch": [{"path": str(root), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 0, "dataset_idle_seconds": 0},
        "destinations": [{"name": "archive", "type": "filesystem", "path": str(target)}],
    }  # fmt: skip
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "agent", "scan", "--config", str(path)], check=True, capture_output=True)
    return time.perf_counter() - started


def rclone_copy(root: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run([rclone(), "copy", "--checksum", "--config", "/dev/null", str(root), str(target)], check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    with bench_setup("count", 5000, "fs") as (arguments, workdir):
        root = small_input(workdir, arguments.count)
        target = workdir / "archive"

        def fresh() -> None:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(workdir / "state", ignore_errors=True)
            target.mkdir()
            # Untimed: the agent's durable flush (syncfs) must not pay for the previous
            # run's copies, which rclone leaves unflushed.
            os.sync()

        times: dict[str, list[float]] = {"agent": [], "rclone copy --checksum": []}
        for _ in range(arguments.rounds):
            fresh()
            times["agent"].append(agent(workdir, root, target))
            fresh()
            times["rclone copy --checksum"].append(rclone_copy(root, target))
        count = arguments.count
        mine, theirs = statistics.median(times["agent"]), statistics.median(times["rclone copy --checksum"])
        ratio = theirs / mine
        print(f"| filesystem, {count:,} x 64 KiB | {mine:.2f} s ({count / mine:,.0f} files/s; goal 1,500:"
              f" {'met' if count / mine >= 1500 else 'not met'}) | rclone copy --checksum {theirs:.2f} s"
              f" ({count / theirs:,.0f} files/s): **{ratio:.2f}x** (goal 1.0x, {'met' if ratio >= 1 else 'not met'})"
              f" | agent {', '.join(f'{v:.2f}' for v in times['agent'])}; rclone"
              f" {', '.join(f'{v:.2f}' for v in times['rclone copy --checksum'])} |")  # fmt: skip


if __name__ == "__main__":
    main()

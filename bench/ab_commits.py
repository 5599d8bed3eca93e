"""Two versions of the agent on the small-file row, alternated round by round: did a change
make `harvest scan` of many small files to a folder faster? Prints wall and CPU medians.

Each version is a checkout of this repository (e.g. `git worktree add /tmp/before COMMIT`);
both run with this environment's interpreter, from their own folder, every run from a
flushed disk. Machines drift over a session (this one measured the same code 2.9 s one
evening and 3.8 s the next morning); only versions alternated in one run compare.

Usage: python bench/ab_commits.py BEFORE_DIR AFTER_DIR [--count 5000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _net import small_input


def run(checkout: Path, workdir: Path, root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one `harvest scan` by the agent in *checkout*."""
    for name in ("state", "archive"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    (workdir / "archive").mkdir()
    config = {
        "version": 1, "instrument": {"id": "BENCH-AB"}, "state_dir": str(workdir / "state"),
        "watch": [{"path": str(root), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 0, "dataset_idle_seconds": 0},
        "destinations": [{"name": "archive", "type": "filesystem", "path": str(workdir / "archive")}],
    }  # fmt: skip
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    os.sync()
    before, started = os.times(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "agent", "scan", "--config", str(path)], cwd=checkout, check=True,
                   capture_output=True)  # fmt: skip
    wall, after = time.perf_counter() - started, os.times()
    cpu = after.children_user + after.children_system - before.children_user - before.children_system
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=6)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="harvest-bench-ab-"))
    try:
        root = small_input(workdir, arguments.count)
        results: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for _ in range(arguments.rounds):
            results["before"].append(run(arguments.before, workdir, root))
            results["after"].append(run(arguments.after, workdir, root))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for name, runs in results.items():
        wall = statistics.median(wall for wall, _ in runs)
        cpu = statistics.median(cpu for _, cpu in runs)
        rounds = ", ".join(f"{wall:.2f}" for wall, _ in runs)
        print(f"| {name} | {wall:.2f} s ({arguments.count / wall:,.0f} files/s) | CPU {cpu:.2f} s | {rounds} |")


if __name__ == "__main__":
    main()

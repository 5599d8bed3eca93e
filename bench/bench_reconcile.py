"""Start-up reconcile of a fully harvested tree (default 1,000,000 files) vs `find`.

In one run, alternating: `harvest scan` on the tree whose every file the journal already
holds (the whole command: start-up, reconcile, nothing to do, exit), plain `find -type f`
(names only, from d_type) and `find -type f -printf '%i %s %T@'` (which, like the agent,
reads each file's inode, size and mtime). The page cache is warm for all of them.

Goal: <= 3x `find`.
Usage: python bench/bench_reconcile.py [--files 1000000] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _archive import archive_setup


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    arguments, config, _ = archive_setup(3)
    tree = str(arguments.workdir / f"tree-{arguments.files}")
    runs = {
        "harvest scan": [sys.executable, "-m", "agent", "scan", "--config", str(config)],
        "find": ["find", tree, "-type", "f"],
        "find -printf inode,size,mtime": ["find", tree, "-type", "f", "-printf", "%i %s %T@\n"],
    }
    timed(runs["find"])  # warm the cache
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(arguments.rounds):
        for name, command in runs.items():
            times[name].append(timed(command))
    agent = statistics.median(times["harvest scan"])
    cells = [f"{arguments.files:,} harvested files", f"{agent:.2f} s"]
    for name in ("find", "find -printf inode,size,mtime"):
        baseline = statistics.median(times[name])
        goal = "met" if agent <= 3 * baseline else "not met"
        cells.append(f"{name} {baseline:.2f} s: agent **{agent / baseline:.1f}x** as long (goal <= 3x: {goal})")
    raw = "; ".join(f"{name} " + ", ".join(f"{value:.2f}" for value in values) for name, values in times.items())
    print("| " + " | ".join(cells) + f" | {raw} |")


if __name__ == "__main__":
    main()

"""Idle cost as the archive grows: `harvest run` on fully harvested archives of different
sizes (default 10,000 and 1,000,000 files), after its start-up reconcile, doing nothing.

For each size, in one run: the daemon starts, the start-up reconcile is awaited (the
journal's ``reconcile_finished_at`` fact), then CPU time (user + system, all threads, from
/proc) and resident memory are read over a window. Goal: < 0.5 % of a core, flat in the
number of harvested files; RSS < 150 MB. The periodic reconcile (every
``scan.interval_seconds``, default 600 s, or longer where a scan costs more than 0.25 % of
a core over it: the journal's ``reconcile_interval_seconds`` fact) is reported apart, as
its cost spread over its interval, and added for the average the goal is judged on.

Usage: python bench/bench_idle.py [--sizes 10000,1000000] [--window 60] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from _archive import build_archive

TICKS = os.sysconf("SC_CLK_TCK")


def fact(state: Path, key: str) -> str | None:
    try:
        connection = sqlite3.connect(f"{(state / 'journal.sqlite3').as_uri()}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT value FROM agent WHERE key = ?", (key,)).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(workdir: Path, files: int, window: float) -> dict[str, float]:
    config, state = build_archive(workdir, files)
    previous = fact(state, "reconcile_finished_at")
    daemon = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while fact(state, "reconcile_finished_at") in (None, previous):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon ended or never finished its reconcile ({files} files)")
            time.sleep(0.5)
        reconcile = float(fact(state, "reconcile_seconds") or 0)
        reconcile_cpu = float(fact(state, "reconcile_cpu_seconds") or 0)
        interval = float(fact(state, "reconcile_interval_seconds") or 600)
        time.sleep(5)  # the last commits and facts of the start
        start_cpu, started = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(window)
        idle = (cpu_seconds(daemon.pid) - start_cpu) / (time.monotonic() - started)
        return {"idle": idle * 100, "rss": rss_mib(daemon.pid), "reconcile": reconcile, "reconcile_cpu": reconcile_cpu,
                "interval": interval}  # fmt: skip
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/harvest-bench-scale"))
    arguments = parser.parse_args()
    arguments.workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"| harvested files | idle CPU ({arguments.window:.0f} s window) | RSS | start-up reconcile in the daemon"
        " (wall / CPU) | next reconcile after | its CPU spread over that interval | idle + periodic |"
        " goal (< 0.5 % on average, < 150 MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for files in (int(size) for size in arguments.sizes.split(",")):
        result = measure(arguments.workdir, files, arguments.window)
        spread = result["reconcile_cpu"] / result["interval"] * 100
        average = result["idle"] + spread
        met = "met" if average < 0.5 and result["rss"] < 150 else "not met"
        print(f"| {files:,} | {result['idle']:.2f} % | {result['rss']:.0f} MB | {result['reconcile']:.1f} s /"
              f" {result['reconcile_cpu']:.1f} s | {result['interval']:.0f} s | {spread:.2f} % | {average:.2f} % |"
              f" {met} |")  # fmt: skip


if __name__ == "__main__":
    main()

"""`harvest status --json` on a large journal (default: the 1,000,000-file harvested
archive of bench/_archive.py): the whole command as an operator runs it (a new Python
process), and the report alone in process (`build_status`).

Goal: whole command < 400 ms, report < 150 ms.
Usage: python bench/bench_status.py [--files 1000000] [--rounds 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _archive import build_archive

from agent.observe.status import build_status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/harvest-bench-scale"))
    arguments = parser.parse_args()
    arguments.workdir.mkdir(parents=True, exist_ok=True)
    config, state = build_archive(arguments.workdir, arguments.files)
    command = [sys.executable, "-m", "agent", "status", "--json", "--config", str(config)]
    whole, report = [], []
    for _ in range(arguments.rounds):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        whole.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        build_status(state)
        report.append((time.perf_counter() - started) * 1000)
    command_ms, report_ms = statistics.median(whole), statistics.median(report)
    print(f"| {arguments.files:,}-file journal | whole command {command_ms:.0f} ms (goal < 400: "
          f"{'met' if command_ms < 400 else 'not met'}) | report {report_ms:.0f} ms (goal < 150: "
          f"{'met' if report_ms < 150 else 'not met'}) | whole {', '.join(f'{v:.0f}' for v in whole)};"
          f" report {', '.join(f'{v:.0f}' for v in report)} |")  # fmt: skip


if __name__ == "__main__":
    main()

"""`harvest status --json` on a large journal (default: the 1,000,000-file harvested
archive of bench/_archive.py): the whole command as an operator runs it (a new Python
process), and the report alone in process (`build_status`).

Goal: whole command < 400 ms, report < 150 ms.
Usage: python bench/bench_status.py [--files 1000000] [--rounds 5] [--workdir DIR]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from _archive import archive_setup

from agent.observe.status import build_status


def main() -> None:
    arguments, config, state = archive_setup(5)
    command = [sys.executable, "-m", "agent", "status", "--json", "--config", str(config)]
    whole, report = [], []
    for _ in range(arguments.rounds):
        started = time.perf_counter()
        # The exit code is the health (0 healthy, 1 attention, 2 problem), not a failure.
        answer = subprocess.run(command, capture_output=True, text=True)
        json.loads(answer.stdout)  # a real report, whatever it says
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

"""S3, many small files: the agent end to end vs `rclone copy --transfers 8`, on
`rclone serve s3` at 127.0.0.1, interleaved.

Goal: >= 1.0x rclone's files/s.
Usage: python bench/bench_s3_small.py [--count 2000] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _net import agent_scan, interleaved, ratio_line, rclone_copy, small_input

from tests.integration.servers import start_rclone_s3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="harvest-bench-s3small-", dir=arguments.workdir))
    try:
        root = small_input(workdir, arguments.count)
        server = start_rclone_s3(workdir)
        try:
            times = interleaved(arguments.rounds, {
                "agent": lambda: agent_scan(workdir, server, root, "s3-small"),
                "rclone copy --transfers 8": lambda: rclone_copy(server, root, workdir, "--transfers", "8"),
            })  # fmt: skip
        finally:
            server.stop()
        goals = {"rclone copy --transfers 8": 1.0}
        print(ratio_line(f"S3, {arguments.count:,} x 64 KiB", times, goals, "files/s", arguments.count))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

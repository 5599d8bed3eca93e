"""S3, many small files: the agent end to end vs `rclone copy --transfers 8`, on
`rclone serve s3` at 127.0.0.1, interleaved.

Goal: >= 1.0x rclone's files/s.
Usage: python bench/bench_s3_small.py [--count 2000] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import shutil

from _net import agent_scan, bench_setup, interleaved, ratio_line, rclone_copy, small_input

from tests.integration.servers import start_rclone_s3


def main() -> None:
    arguments, workdir = bench_setup("count", 2000, "s3small")
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

"""S3, many small files: the agent end to end vs `rclone copy --transfers 8`, on
`rclone serve s3` at 127.0.0.1, interleaved.

Goal: >= 1.0x rclone's files/s.
Usage: python bench/bench_s3_small.py [--count 2000] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

from _net import agent_scan, bench_setup, on_server, ratio_line, rclone_copy, small_input

from tests.integration.servers import start_rclone_s3


def main() -> None:
    with bench_setup("count", 2000, "s3small") as (arguments, workdir):
        root = small_input(workdir, arguments.count)
        times = on_server(start_rclone_s3, workdir, arguments.rounds, lambda server: {
            "agent": lambda: agent_scan(workdir, server, root, "s3-small"),
            "rclone copy --transfers 8": lambda: rclone_copy(server, root, workdir, "--transfers", "8"),
        })  # fmt: skip
        goals = {"rclone copy --transfers 8": 1.0}
        print(ratio_line(f"S3, {arguments.count:,} x 64 KiB", times, goals, "files/s", arguments.count))


if __name__ == "__main__":
    main()

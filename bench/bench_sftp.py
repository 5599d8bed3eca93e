"""SFTP, one large file: the agent end to end (hash, upload, server-side verification,
commit) vs `rclone copy` (which also verifies with a server hash) and a plain paramiko
`put` (upload only, no verification), on `rclone serve sftp` at 127.0.0.1, interleaved.

Goal: >= 1.0x rclone copy.
Usage: python bench/bench_sftp.py [--mib 512] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

from _net import agent_scan, bench_setup, big_input, on_server, paramiko_put, ratio_line, rclone_copy

from tests.integration.servers import start_rclone_sftp


def main() -> None:
    with bench_setup("mib", 512, "sftp") as (arguments, workdir):
        root, source = big_input(workdir, arguments.mib)
        times = on_server(start_rclone_sftp, workdir, arguments.rounds, lambda server: {
            "agent": lambda: agent_scan(workdir, server, root, "sftp"),
            "rclone copy": lambda: rclone_copy(server, source, workdir),
            "paramiko put": lambda: paramiko_put(server, source, workdir),
        })  # fmt: skip
        goals = {"rclone copy": 1.0, "paramiko put": 0.0}
        print(ratio_line(f"SFTP, {arguments.mib:,} MiB", times, goals, "MiB/s", arguments.mib))


if __name__ == "__main__":
    main()

"""SFTP, one large file: the agent end to end (hash, upload, server-side verification,
commit) vs `rclone copy` (which also verifies with a server hash) and a plain paramiko
`put` (upload only, no verification), on `rclone serve sftp` at 127.0.0.1, interleaved.

Goal: >= 1.0x rclone copy.
Usage: python bench/bench_sftp.py [--mib 512] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import shutil

from _net import agent_scan, bench_setup, big_input, interleaved, paramiko_put, ratio_line, rclone_copy

from tests.integration.servers import start_rclone_sftp


def main() -> None:
    arguments, workdir = bench_setup("mib", 512, "sftp")
    try:
        root, source = big_input(workdir, arguments.mib)
        server = start_rclone_sftp(workdir)
        try:
            times = interleaved(arguments.rounds, {
                "agent": lambda: agent_scan(workdir, server, root, "sftp"),
                "rclone copy": lambda: rclone_copy(server, source, workdir),
                "paramiko put": lambda: paramiko_put(server, source),
            })  # fmt: skip
        finally:
            server.stop()
        goals = {"rclone copy": 1.0, "paramiko put": 0.0}
        print(ratio_line(f"SFTP, {arguments.mib:,} MiB", times, goals, "MiB/s", arguments.mib))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""S3, one large file: the agent end to end (hash, upload, verify, commit) vs boto3
`upload_file` (upload only) and `rclone copy`, on `rclone serve s3` at 127.0.0.1, interleaved.

Goal: >= 1.0x boto3 upload_file and >= 1.3x rclone copy (throughput).
Usage: python bench/bench_s3_large.py [--mib 1024] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

from _net import MIB, agent_scan, bench_setup, big_input, boto3_upload_file, on_server, ratio_line, rclone_copy

from tests.integration.servers import start_rclone_s3

PART_BYTES = 16 * MIB


def main() -> None:
    with bench_setup("mib", 1024, "s3") as (arguments, workdir):
        root, source = big_input(workdir, arguments.mib)
        times = on_server(start_rclone_s3, workdir, arguments.rounds, lambda server: {
            "agent": lambda: agent_scan(workdir, server, root, "s3", part_bytes=PART_BYTES),
            "boto3 upload_file": lambda: boto3_upload_file(server, source, PART_BYTES),
            "rclone copy": lambda: rclone_copy(server, source, workdir, "--s3-chunk-size", "16M"),
        })  # fmt: skip
        goals = {"boto3 upload_file": 1.0, "rclone copy": 1.3}
        print(ratio_line(f"S3, {arguments.mib:,} MiB", times, goals, "MiB/s", arguments.mib))


if __name__ == "__main__":
    main()

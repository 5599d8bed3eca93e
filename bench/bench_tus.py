"""tus, one large file: the agent end to end (hash, upload in 64 MiB PATCHes, commit) vs a
raw streaming client (one PATCH of the whole file with requests; its sha256 announced so
that the server does the same finishing check), on @tus/server at 127.0.0.1, interleaved.

Goal: >= 0.95x the raw client.
Usage: python bench/bench_tus.py [--mib 1024] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import shutil

from _net import agent_scan, bench_setup, big_input, interleaved, ratio_line, raw_tus

from tests.integration.servers import start_tus


def main() -> None:
    arguments, workdir = bench_setup("mib", 1024, "tus")
    try:
        root, source = big_input(workdir, arguments.mib)
        server = start_tus(workdir)
        try:
            times = interleaved(arguments.rounds, {
                "agent": lambda: agent_scan(workdir, server, root, "tus"),
                "raw streaming PATCH": lambda: raw_tus(server, source),
            })  # fmt: skip
        finally:
            server.stop()
        print(ratio_line(f"tus, {arguments.mib:,} MiB", times, {"raw streaming PATCH": 0.95}, "MiB/s", arguments.mib))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

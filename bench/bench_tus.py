"""tus, one large file: the agent end to end (hash, upload in 64 MiB PATCHes, commit) vs a
raw streaming client (one PATCH of the whole file with requests; its sha256 announced so
that the server does the same finishing check), on @tus/server at 127.0.0.1, interleaved.

Goal: >= 0.95x the raw client.
Usage: python bench/bench_tus.py [--mib 1024] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

from _net import agent_scan, bench_setup, big_input, on_server, ratio_line, raw_tus

from tests.integration.servers import start_tus


def main() -> None:
    with bench_setup("mib", 1024, "tus") as (arguments, workdir):
        root, source = big_input(workdir, arguments.mib)
        times = on_server(start_tus, workdir, arguments.rounds, lambda server: {
            "agent": lambda: agent_scan(workdir, server, root, "tus"),
            "raw streaming PATCH": lambda: raw_tus(server, source),
        })  # fmt: skip
        print(ratio_line(f"tus, {arguments.mib:,} MiB", times, {"raw streaming PATCH": 0.95}, "MiB/s", arguments.mib))


if __name__ == "__main__":
    main()

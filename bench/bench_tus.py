"""tus, one large file: the agent end to end (hash, upload in 64 MiB PATCHes, commit) vs a
raw streaming client (one PATCH of the whole file with requests; its sha256 announced so
that the server does the same finishing check), on @tus/server at 127.0.0.1, interleaved.

Goal: >= 0.95x the raw client.
Usage: python bench/bench_tus.py [--mib 1024] [--rounds 3] [--workdir DIR] [--chunk-mib N]
(--chunk-mib: the agent's chunk_bytes, bytes per PATCH; default the configuration's, 64 MiB)
"""

from __future__ import annotations

import argparse

from _net import MIB, agent_scan, bench_setup, big_input, on_server, ratio_line, raw_tus

from tests.integration.servers import start_tus


def main() -> None:
    def chunk_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--chunk-mib", type=int, default=None)

    with bench_setup("mib", 1024, "tus", chunk_option) as (arguments, workdir):
        root, source = big_input(workdir, arguments.mib)
        chunk = {"chunk_bytes": arguments.chunk_mib * MIB} if arguments.chunk_mib else {}
        times = on_server(start_tus, workdir, arguments.rounds, lambda server: {
            "agent": lambda: agent_scan(workdir, server, root, "tus", **chunk),
            "raw streaming PATCH": lambda: raw_tus(server, source),
        })  # fmt: skip
        label = f"tus, {arguments.mib:,} MiB" + (f", {arguments.chunk_mib} MiB PATCHes" if chunk else "")
        print(ratio_line(label, times, {"raw streaming PATCH": 0.95}, "MiB/s", arguments.mib))


if __name__ == "__main__":
    main()

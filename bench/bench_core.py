"""Core pipeline benchmark: `harvest scan` against the shell baseline, in the same run.

1. One large file (default 2 GiB): agent end-to-end (settle, hash, copy, verify, commit)
   vs `sha256sum src && cp src dst && sha256sum dst`. Goal: >= 0.9x the baseline's throughput.
2. Many small files (default 10,000 x 64 KiB): files per second. Goal: >= 1,000 files/s.

Usage: python bench/bench_core.py [--big-gib 2] [--small-count 10000] [--rounds 2] [--workdir DIR]
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def write_config(workdir: Path, name: str) -> Path:
    config = {
        "version": 1,
        "instrument": {"id": "BENCH-01"},
        "state_dir": str(workdir / f"state-{name}"),
        "watch": [{"path": str(workdir / f"src-{name}"), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 0, "dataset_idle_seconds": 0},
        "destinations": [{"name": "archive", "type": "filesystem", "path": str(workdir / f"dst-{name}")}],
    }
    path = workdir / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def reset(workdir: Path, name: str) -> None:
    for prefix in ("state", "dst"):
        shutil.rmtree(workdir / f"{prefix}-{name}", ignore_errors=True)
    (workdir / f"dst-{name}").mkdir()


def run_agent(config: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "agent", "scan", "--config", str(config)], check=True, capture_output=True)
    return time.perf_counter() - started


def run_baseline(source: Path, target: Path, *, durable: bool) -> float:
    """The issue's baseline; *durable* adds the flush to disk the agent always does."""
    flush = f" && sync -f '{target}'" if durable else ""
    started = time.perf_counter()
    subprocess.run(  # noqa: S602 - the baseline *is* a shell pipeline
        f"sha256sum '{source}' >/dev/null && cp '{source}' '{target}'{flush} && sha256sum '{target}' >/dev/null",
        shell=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def make_big(workdir: Path, size_bytes: int) -> Path:
    session = workdir / "src-big" / "bench" / "big"
    session.mkdir(parents=True, exist_ok=True)
    source = session / "volume.raw"
    block = os.urandom(8 << 20)
    with source.open("wb") as stream:
        for _ in range(size_bytes // len(block)):
            stream.write(block)
    return source


def make_small(workdir: Path, count: int, size_bytes: int) -> None:
    for index in range(count):
        session = workdir / "src-small" / "bench" / f"s{index // 1000:03d}"
        session.mkdir(parents=True, exist_ok=True)
        (session / f"tile_{index:06d}.tif").write_bytes(os.urandom(size_bytes))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-gib", type=float, default=2.0)
    parser.add_argument("--small-count", type=int, default=10_000)
    parser.add_argument("--small-kib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="harvest-bench-", dir=arguments.workdir))
    try:
        big_bytes = int(arguments.big_gib * (1 << 30))
        source = make_big(workdir, big_bytes)
        os.sync()
        big_config = write_config(workdir, "big")
        baseline_times, durable_times, agent_times = [], [], []
        for _ in range(arguments.rounds):  # interleaved, so all see the same machine state
            baseline_times.append(run_baseline(source, workdir / "baseline-copy.raw", durable=False))
            durable_times.append(run_baseline(source, workdir / "baseline-copy.raw", durable=True))
            reset(workdir, "big")
            agent_times.append(run_agent(big_config))
        baseline = statistics.median(baseline_times)
        durable = statistics.median(durable_times)
        agent = statistics.median(agent_times)
        mib = big_bytes / (1 << 20)

        make_small(workdir, arguments.small_count, arguments.small_kib << 10)
        # Flush the generator's own writes first: the agent's batched syncfs() would
        # otherwise pay for them (on an instrument PC the archive is another filesystem).
        os.sync()
        small_config = write_config(workdir, "small")
        small_times = []
        for _ in range(arguments.rounds):
            reset(workdir, "small")
            small_times.append(run_agent(small_config))
        small = statistics.median(small_times)

        print("| measurement | baseline | agent | ratio / rate |\n|---|---|---|---|")
        print(
            f"| 1 x {arguments.big_gib:g} GiB, end to end | {baseline:.2f} s ({mib / baseline:.0f} MiB/s)"
            f" | {agent:.2f} s ({mib / agent:.0f} MiB/s) | {baseline / agent:.2f}x baseline throughput |"
        )
        print(
            f"| same, baseline with `sync -f dst` before the second sha256sum | {durable:.2f} s"
            f" ({mib / durable:.0f} MiB/s) | {agent:.2f} s | {durable / agent:.2f}x |"
        )
        print(
            f"| {arguments.small_count:,} x {arguments.small_kib} KiB, end to end | — | {small:.2f} s"
            f" | {arguments.small_count / small:,.0f} files/s |"
        )
        print(
            f"\nrounds: {arguments.rounds}; times (s): baseline {baseline_times}, durable baseline {durable_times},"
            f" agent {agent_times}, small files {small_times}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

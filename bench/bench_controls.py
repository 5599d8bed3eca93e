"""Facility-control benchmark: how closely bandwidth limits hold, what a timetable costs,
and how fast the operator commands answer.

1. Bandwidth accuracy: a 200 MB file through `harvest run` to a filesystem destination
   at several limits; the copy is timed from the journal (sending -> verified).
   Goal: within 10% of the limit.
2. Timetable cost: a 1 GiB `harvest scan` with a timetable that evaluates to "off" on
   every chunk, against no limit at all, in the same run. Goal: >= 0.95x.
3. Operator latency: `harvest status --json` and `harvest pause`/`resume` against the
   running daemon (each a new Python process, as an operator would run it).
4. The status report and a metrics scrape on a large journal (default 100,000 files in
   1,000 datasets, half of them delivered), in process. Goal: well under a second.

Usage: python bench/bench_controls.py [--rates 10,25,50] [--rounds 3] [--journal-files 100000]
       [--only-journal] [--workdir DIR]
Prints Markdown tables for docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import delivery_states, random_file

MIB = 1 << 20
HARVEST = [sys.executable, "-m", "agent"]


def config_for(workdir: Path, name: str, destination_extra: dict[str, object]) -> Path:
    config = {
        "version": 1,
        "instrument": {"id": "BENCH-02"},
        "state_dir": str(workdir / f"state-{name}"),
        "watch": [{"path": str(workdir / f"src-{name}"), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 0.2, "dataset_idle_seconds": 0.5},
        "destinations": [
            {"name": "archive", "type": "filesystem", "path": str(workdir / f"dst-{name}"), **destination_extra}
        ],
    }
    for folder in (f"src-{name}", f"dst-{name}"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
        (workdir / folder).mkdir(parents=True)
    shutil.rmtree(workdir / f"state-{name}", ignore_errors=True)
    path = workdir / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_state(state_dir: Path, wanted: str, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while wanted not in delivery_states(state_dir):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {wanted}")
        time.sleep(0.01)
    return time.monotonic()


def bandwidth_round(workdir: Path, rate_mib: int) -> tuple[float, float]:
    """(measured MiB/s, command latencies in ms) for one limited 200 MB copy."""
    config = config_for(workdir, "limit", {"bandwidth": f"{rate_mib}MiB/s"})
    random_file(workdir / "src-limit/op/s1/volume.raw", 200_000_000)
    daemon = subprocess.Popen([*HARVEST, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
    try:
        started = wait_state(workdir / "state-limit", "sending")
        finished = wait_state(workdir / "state-limit", "verified")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    return 200_000_000 / (finished - started) / MIB, finished - started


def command_latencies(workdir: Path, rounds: int) -> dict[str, float]:
    config = config_for(workdir, "latency", {})
    daemon = subprocess.Popen([*HARVEST, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
    timings: dict[str, list[float]] = {"status --json": [], "pause": [], "resume": []}
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*HARVEST, "rescan", "--config", str(config)], capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not start")
            time.sleep(0.2)
        for _ in range(rounds):
            for command in timings:
                start = time.perf_counter()
                subprocess.run([*HARVEST, *command.split(), "--config", str(config)], capture_output=True)
                timings[command].append((time.perf_counter() - start) * 1000)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    return {command: statistics.median(values) for command, values in timings.items()}


def large_journal(state_dir: Path, files: int, per_dataset: int) -> None:
    """A journal as a busy instrument's would be: *files* files, half of them verified."""
    from agent.journal.store import DeliveryState, FileIdentity, FileState, Journal, SettledFile

    journal = Journal(state_dir)
    try:
        for start in range(0, files, 5000):
            journal.record_settled([
                SettledFile(
                    root="/data", rel_path=f"op/s{index // per_dataset}/f{index}.tif",
                    identity=FileIdentity(1, index, 1 << 20, index), dataset_key=f"op/s{index // per_dataset}",
                    dataset_fields={"operator": "op", "session": f"s{index // per_dataset}"},
                    path_in_dataset=f"f{index}.tif",
                )
                for index in range(start, min(files, start + 5000))
            ])  # fmt: skip
            settled = journal.files_in_state(FileState.SETTLED, 5000)
            journal.record_hashes([(record, "ab" * 32, None) for record in settled], {"/data": ["archive"]})
        deliveries = journal.deliveries_to_send("archive", files // 2)
        journal.finish_deliveries([(delivery, DeliveryState.VERIFIED, None) for delivery in deliveries])
    finally:
        journal.close()


def report_latency(workdir: Path, files: int, rounds: int) -> tuple[float, float]:
    """Median milliseconds for build_status and for one metrics collection."""
    from agent.observe.metrics import JournalCollector
    from agent.observe.status import build_status

    state_dir = workdir / "state-large"
    shutil.rmtree(state_dir, ignore_errors=True)
    large_journal(state_dir, files, per_dataset=max(1, files // 1000))
    status_ms, metrics_ms = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        build_status(state_dir)
        status_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        list(JournalCollector(state_dir).collect())
        metrics_ms.append((time.perf_counter() - start) * 1000)
    return statistics.median(status_ms), statistics.median(metrics_ms)


def scan_seconds(workdir: Path, name: str, extra: dict[str, object], size: int) -> float:
    config = config_for(workdir, name, extra)
    random_file(workdir / f"src-{name}/op/s1/data.raw", size)
    start = time.perf_counter()
    subprocess.run([*HARVEST, "scan", "--config", str(config)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,25,50", help="limits in MiB/s, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--journal-files", type=int, default=100_000)
    parser.add_argument("--only-journal", action="store_true", help="run only part 4")
    arguments = parser.parse_args()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="harvest-bench-controls-"))
    try:
        status_ms, metrics_ms = report_latency(workdir, arguments.journal_files, arguments.rounds)
        print(f"| journal of {arguments.journal_files:,} files | median of {arguments.rounds} |")
        print("|---|---|")
        print(f"| status report (harvest status --json, /status) | {status_ms:.0f} ms |")
        print(f"| metrics scrape (/metrics collector) | {metrics_ms:.0f} ms |")
        print()
        if arguments.only_journal:
            return
        print("| limit | measured (median of rounds) | ratio | rounds |")
        print("|---|---|---|---|")
        for rate in (int(value) for value in arguments.rates.split(",")):
            measured = [bandwidth_round(workdir, rate)[0] for _ in range(arguments.rounds)]
            median = statistics.median(measured)
            spread = ", ".join(f"{value:.2f}" for value in measured)
            print(f"| {rate} MiB/s | {median:.2f} MiB/s | {median / rate:.3f} | {spread} |")

        size = 1 << 30
        plain, timed = [], []
        for _ in range(arguments.rounds):
            plain.append(scan_seconds(workdir, "plain", {}, size))
            timed.append(scan_seconds(workdir, "timed", {"bandwidth": "Mon-Sun 00:00-00:01 1MiB/s; off"}, size))
        ratio = statistics.median(plain) / statistics.median(timed)
        print()
        print("| 1 GiB scan | no limit | timetable evaluating to 'off' | throughput ratio |")
        print("|---|---|---|---|")
        print(f"| median of {arguments.rounds} | {statistics.median(plain):.2f} s |"
              f" {statistics.median(timed):.2f} s | {ratio:.3f} |")  # fmt: skip

        print()
        print("| command (new process each time) | median latency |")
        print("|---|---|")
        for command, milliseconds in command_latencies(workdir, arguments.rounds * 3).items():
            print(f"| harvest {command} | {milliseconds:.0f} ms |")
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A harvested archive as a long-running instrument PC holds it: a tree of N files, every
one of them hashed, verified at the destination and committed in its dataset's bag.

Building it through the agent would take hours at 1,000,000 files, so the journal is
written through the journal's own API (the same rows the pipeline writes), with each
file's real identity (device, inode, size, mtime) so that a reconcile scan finds nothing
new. The tree and journal are kept under *workdir* and reused when they already match.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parents[1]))

from agent.journal.store import DeliveryState, FileState, Journal, SettledFile
from agent.pipeline.hashing import identity_of

PER_DATASET = 1000
BATCH = 5000


def archive_setup(rounds: int) -> tuple[argparse.Namespace, Path, Path]:
    """--files, --rounds, --workdir for the archive benchmarks; (arguments, config, state dir)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/harvest-bench-scale"))
    arguments = parser.parse_args()
    arguments.workdir.mkdir(parents=True, exist_ok=True)
    config, state = build_archive(arguments.workdir, arguments.files)
    return arguments, config, state


def build_archive(workdir: Path, files: int) -> tuple[Path, Path]:
    """(config path, state dir) for an archive of *files* harvested files under *workdir*."""
    root = workdir / f"tree-{files}"
    state = workdir / f"state-{files}"
    config = workdir / f"config-{files}.yaml"
    done = workdir / f".built-{files}"
    config.write_text(yaml.safe_dump(archive_config(root, state, workdir / f"dst-{files}")))
    if done.exists():
        return config, state
    started = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    (workdir / f"dst-{files}").mkdir(parents=True, exist_ok=True)
    _write_tree(root, files)
    _write_journal(root, state, files)
    done.touch()
    print(f"built a harvested archive of {files:,} files in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return config, state


def archive_config(root: Path, state: Path, destination: Path) -> dict[str, object]:
    return {
        "version": 1,
        "instrument": {"id": "BENCH-SCALE"},
        "state_dir": str(state),
        "watch": [{"path": str(root), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": 1, "dataset_idle_seconds": 5},
        "destinations": [{"name": "archive", "type": "filesystem", "path": str(destination)}],
    }


def _rel_path(index: int) -> str:
    return f"op/s{index // PER_DATASET:05d}/f{index:07d}.dat"


def _write_tree(root: Path, files: int) -> None:
    for index in range(files):
        path = root / _rel_path(index)
        if index % PER_DATASET == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def _write_journal(root: Path, state: Path, files: int) -> None:
    state.mkdir(parents=True, exist_ok=True)
    journal = Journal(state)
    key = str(root)
    try:
        for start in range(0, files, BATCH):
            settled = []
            for index in range(start, min(files, start + BATCH)):
                rel_path = _rel_path(index)
                session = f"s{index // PER_DATASET:05d}"
                settled.append(SettledFile(
                    root=key, rel_path=rel_path, identity=identity_of(os.stat(root / rel_path)),
                    dataset_key=f"op/{session}", dataset_fields={"operator": "op", "session": session},
                    path_in_dataset=rel_path.rsplit("/", 1)[1],
                ))  # fmt: skip
            journal.record_settled(settled)
            records = journal.files_in_state(FileState.SETTLED, BATCH)
            empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            journal.record_hashes([(record, empty_sha256, None) for record in records], {key: ["archive"]})
            deliveries = journal.deliveries_to_send("archive", BATCH)
            journal.finish_deliveries([(delivery, DeliveryState.VERIFIED, None) for delivery in deliveries])
        for dataset_id in journal.open_dataset_ids():
            journal.close_dataset(dataset_id, "idle")
            journal.record_commit(dataset_id, "archive", 1)
    finally:
        journal.close()

"""Declared close inside the engine (in memory, fake clock): a dataset whose files declare
all of it closes at the first engine step after they are hashed, long before its idle time."""

from __future__ import annotations

from pathlib import Path

import pydicom

from agent.journal.store import DatasetState
from tests.helpers import DATA
from tests.unit.test_engine_in_memory import Harness


def _series(harness: Harness, folder: str, count: int) -> None:
    target = harness.instrument / folder
    target.mkdir(parents=True, exist_ok=True)
    sources = sorted((DATA / "dicom/series/CT_5slice").iterdir())
    for index in range(count):
        dataset = pydicom.dcmread(sources[index])
        dataset.AcquisitionNumber = 1
        dataset.ImagesInAcquisition = 3
        dataset.save_as(target / f"{index}.dcm")


def _state(harness: Harness) -> DatasetState:
    ids = harness.journal.open_dataset_ids() + harness._closed()
    return harness.journal.dataset(ids[0]).state


def test_a_declared_acquisition_closes_as_soon_as_it_is_hashed(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        _series(harness, "alice/s1", 2)
        harness.settle()
        harness.work()
        harness.engine.step()
        assert _state(harness) == DatasetState.OPEN  # 2 of 3
        _series(harness, "alice/s1", 3)
        harness.settle()
        harness.work()
        harness.engine.step()  # no idle time has passed
        assert _state(harness) == DatasetState.CLOSED
        (closed,) = harness._closed()
        completeness = harness.journal.dataset_completeness(closed)
        assert completeness is not None and completeness["decided_by"] == "declared"
        harness.work()
        assert [kind for kind, _ in harness.archive.log].count("commit") == 1
    finally:
        harness.close()


def test_a_study_does_not_declare_its_series_so_the_idle_time_decides(tmp_path: Path) -> None:
    harness = Harness(tmp_path, group_by="dicom-study")
    try:
        _series(harness, "alice/s1", 3)
        harness.settle()
        harness.work()
        harness.engine.step()
        assert _state(harness) == DatasetState.OPEN
        harness.close_idle_datasets()
        assert _state(harness) == DatasetState.CLOSED
        completeness = harness.journal.dataset_completeness(harness._closed()[0])
        assert completeness is not None and completeness["decided_by"] == "idle"
    finally:
        harness.close()


def test_a_rule_may_give_its_truncated_files_a_grace_of_its_own(tmp_path: Path) -> None:
    harness = Harness(tmp_path, truncated_grace_seconds=3600)  # the harness's global grace is 0
    try:
        source = DATA / "dicom/single/CT_small.dcm"
        (harness.instrument / "alice/s1").mkdir(parents=True)
        (harness.instrument / "alice/s1/cut.dcm").write_bytes(source.read_bytes()[:-500])
        harness.engine.rescan([harness.instrument])
        for _ in range(20):
            harness.engine.step()
            harness.clock.advance(5.0)
        assert harness.engine.settling == 1  # waiting as incomplete, not settled
        harness.clock.advance(3600)
        harness.engine.step()
        assert harness.engine.settling == 0
    finally:
        harness.close()

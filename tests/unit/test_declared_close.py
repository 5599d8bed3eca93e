"""Layers two and three: a quiet file must be whole to settle, and a dataset closes as soon
as everything its files declare is present (agent.pipeline.settle, agent.pipeline.declared)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from agent.extract import extract_metadata
from agent.extract.model import FileCompleteness
from agent.extract.unit_extent import expected_files
from agent.pipeline.declared import DeclaredFile, evaluate
from agent.pipeline.hashing import identity_of
from agent.pipeline.settle import Candidate, SettleTracker

DATA = Path(__file__).parents[1] / "data"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _tracker(clock: Clock, verdicts: dict[str, str], grace: float = 60.0) -> SettleTracker:
    def wholeness(candidate: Candidate) -> FileCompleteness:
        state = verdicts[candidate.rel_path]
        return FileCompleteness(state=state, detail="238 of 240 IFDs" if state == "truncated" else None)  # type: ignore[arg-type]

    return SettleTracker(2.0, clock=clock, wholeness=wholeness, grace=lambda root: grace)


def _poll_until(tracker: SettleTracker, clock: Clock, until: float) -> list[str]:
    settled: list[str] = []
    while clock.now < until:
        clock.now += 0.5
        settled += [candidate.rel_path for candidate in tracker.poll().settled]
    return settled


def test_a_quiet_truncated_file_waits_for_its_grace_then_settles(tmp_path: Path) -> None:
    clock = Clock()
    verdicts = {"whole.tif": "whole", "cut.tif": "truncated"}
    tracker = _tracker(clock, verdicts)
    for name in verdicts:
        (tmp_path / name).write_bytes(b"x")
        tracker.observe("root", name, tmp_path / name, identity_of((tmp_path / name).stat()))
    assert _poll_until(tracker, clock, 105.0) == ["whole.tif"]
    (waiting,) = tracker.incomplete()
    assert waiting.rel_path == "cut.tif" and waiting.incomplete is not None
    assert waiting.incomplete.detail == "238 of 240 IFDs"
    assert _poll_until(tracker, clock, 150.0) == []  # still within its grace
    assert _poll_until(tracker, clock, 170.0) == ["cut.tif"]


def test_a_truncated_file_that_grows_again_starts_over_and_settles_whole(tmp_path: Path) -> None:
    clock = Clock()
    verdicts = {"stack.tif": "truncated"}
    tracker = _tracker(clock, verdicts)
    path = tmp_path / "stack.tif"
    path.write_bytes(b"x")
    tracker.observe("root", "stack.tif", path, identity_of(path.stat()))
    assert _poll_until(tracker, clock, 110.0) == []
    path.write_bytes(b"xy")  # the writer resumed: its last tiles arrive
    verdicts["stack.tif"] = "whole"
    settled = _poll_until(tracker, clock, 115.0)
    assert settled == ["stack.tif"]
    assert tracker.incomplete() == []


def _files(folder: Path, names: list[str] | None = None) -> list[DeclaredFile]:
    paths = sorted(path for path in folder.rglob("*") if path.is_file())
    return [
        DeclaredFile(path.relative_to(folder).as_posix(), path, json.loads(extract_metadata(path).model_dump_json()))
        for path in paths
        if names is None or path.name in names
    ]


def test_an_ome_fileset_is_complete_when_every_member_is_there() -> None:
    folder = DATA / "ome-tiff/multifile-master"
    members = sorted(path.name for path in folder.iterdir())
    assert evaluate(_files(folder), expected_files).complete
    partial = evaluate(_files(folder, members[:4]), expected_files)
    assert not partial.complete
    assert partial.waiting() == "waiting for 1 of 5 files (OME fileset)"


def test_a_file_no_declaration_covers_leaves_the_idle_timer_in_charge(tmp_path: Path) -> None:
    shutil.copytree(DATA / "ome-tiff/multifile-master", tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("stage drifted at z=3")
    declared = evaluate(_files(tmp_path / "run"), expected_files)
    assert declared.undeclared == ["notes.txt"]
    assert not declared.complete


def _series(tmp_path: Path, count: int, images_in_acquisition: int | None) -> Path:
    folder = tmp_path / "series"
    folder.mkdir()
    sources = sorted((DATA / "dicom/series/CT_5slice").iterdir())
    for source in sources[:count]:
        dataset = pydicom.dcmread(source)
        if images_in_acquisition is not None:
            dataset.ImagesInAcquisition = images_in_acquisition
        dataset.AcquisitionNumber = 1
        dataset.save_as(folder / source.name)
    return folder


def test_a_dicom_acquisition_is_complete_when_it_holds_the_images_it_declares(tmp_path: Path) -> None:
    folder = _series(tmp_path, 4, images_in_acquisition=5)
    partial = evaluate(_files(folder), expected_files)
    assert partial.waiting() == "waiting for 1 of 5 instances (DICOM acquisition)"
    shutil.rmtree(folder)
    assert evaluate(_files(_series(tmp_path, 5, images_in_acquisition=5)), expected_files).complete


def test_a_dicom_series_that_declares_no_count_is_not_complete_by_declaration(tmp_path: Path) -> None:
    declared = evaluate(_files(_series(tmp_path, 5, images_in_acquisition=None)), expected_files)
    assert not declared.complete and len(declared.undeclared) == 5


def test_a_micro_manager_run_declares_its_images() -> None:
    declared = evaluate(_files(DATA / "tiff/micromanager"), expected_files)
    kinds = {count.kind: (count.declared, count.found) for count in declared.counts}
    assert kinds["micromanager"] == (20, 20)
    assert declared.complete


def test_a_truncated_member_keeps_a_declared_dataset_incomplete(tmp_path: Path) -> None:
    shutil.copytree(DATA / "ome-tiff/multifile-master", tmp_path / "run")
    member = tmp_path / "run" / "multifile-Z3.ome.tiff"
    member.write_bytes(member.read_bytes()[:-100])
    declared = evaluate(_files(tmp_path / "run"), expected_files)
    assert declared.truncated == ["multifile-Z3.ome.tiff"]
    assert not declared.complete
    assert (declared.waiting() or "").startswith("waiting for 1 incomplete file(s)")


def _zarr_store(root: Path, *, chunks_written: int) -> Path:
    store = root / "image.ome.zarr"
    (store / "0").mkdir(parents=True)
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    multiscales = [{"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}]
    (store / ".zattrs").write_text(json.dumps({"multiscales": multiscales}))
    array = {"zarr_format": 2, "shape": [20, 30], "chunks": [10, 10], "dtype": "<u1", "compressor": None,
             "fill_value": 0, "order": "C", "filters": None, "dimension_separator": "/"}  # fmt: skip
    (store / "0" / ".zarray").write_text(json.dumps(array))
    keys = [(row, column) for row in range(2) for column in range(3)]
    for row, column in keys[:chunks_written]:
        (store / "0" / str(row)).mkdir(exist_ok=True)
        (store / "0" / str(row) / str(column)).write_bytes(bytes(100))
    return store


def test_an_ome_zarr_store_is_complete_when_every_chunk_its_shape_requires_is_there(tmp_path: Path) -> None:
    _zarr_store(tmp_path, chunks_written=5)
    partial = evaluate(_files(tmp_path), expected_files)
    assert partial.waiting() == "waiting for 1 of 9 files (OME-Zarr store)"
    (tmp_path / "image.ome.zarr" / "0" / "1" / "2").write_bytes(bytes(100))
    assert evaluate(_files(tmp_path), expected_files).complete


def test_a_paravision_scan_is_complete_once_its_reconstruction_is_there(tmp_path: Path) -> None:
    scan = tmp_path / "18"
    shutil.copytree(DATA / "vendor/paravision/BadBanana_01/18", scan)
    assert evaluate(_files(tmp_path), expected_files).complete
    (scan / "pdata" / "1" / "2dseq").unlink()
    partial = evaluate(_files(tmp_path), expected_files)
    assert partial.waiting() == "waiting for 1 of 4 files (ParaVision scan)"


def test_a_companion_ome_xml_declares_its_binary_only_tiffs(tmp_path: Path) -> None:
    shutil.copytree(DATA / "ome-tiff/multifile-companion", tmp_path / "run")
    assert evaluate(_files(tmp_path / "run"), expected_files).complete
    (tmp_path / "run" / "multifile-Z5.ome.tiff").unlink()
    partial = evaluate(_files(tmp_path / "run"), expected_files)
    assert not partial.complete
    assert (partial.waiting() or "").startswith("waiting for 1 of ")


def test_a_failing_structure_check_never_holds_a_file_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.engine import completion

    def broken(path: Path) -> FileCompleteness:
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(completion, "check_file", broken)
    path = tmp_path / "a.tif"
    path.write_bytes(b"II*\x00")
    candidate = Candidate("root", "a.tif", path, identity_of(path.stat()), 0.0, 0.0)
    verdict = completion.candidate_wholeness(candidate)
    assert verdict.state == "unknown" and verdict.detail == "structure check failed"

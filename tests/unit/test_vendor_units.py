"""Vendor metadata beyond single files: ND2 through fakes of the nd2 library's API, personal
data canaries in vendor headers, multi-file units in placement and in harvest.json, and
version-1 records read by this version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from pytest import MonkeyPatch

from agent.extract import bundles, extract_metadata
from agent.extract.model import FileMetadata, load_metadata
from agent.extract.nd2 import apply_nd2
from agent.pipeline.datasets import place
from agent.rules.templates import DatasetTemplate

VENDOR = Path(__file__).parents[1] / "data" / "vendor"


def fake_nd2() -> SimpleNamespace:
    """The parts of ``nd2.ND2File`` the reader uses, shaped as nd2 0.10+ documents them."""
    channel = SimpleNamespace(
        channel=SimpleNamespace(name="GFP", emissionLambdaNm=525.0, excitationLambdaNm=488.0),
        microscope=SimpleNamespace(
            objectiveName="Plan Apo λ 60x Oil", objectiveMagnification=60.0, objectiveNumericalAperture=1.4
        ),
    )
    second = SimpleNamespace(
        channel=SimpleNamespace(name="mCherry", emissionLambdaNm=610.0, excitationLambdaNm=561.0),
        microscope=channel.microscope,
    )
    return SimpleNamespace(
        sizes={"T": 5, "P": 2, "Z": 11, "C": 2, "Y": 512, "X": 512},
        dtype=np.dtype("uint16"),
        voxel_size=lambda: SimpleNamespace(x=0.108, y=0.108, z=0.3),
        text_info={
            "date": "2024-03-05T10:11:12",
            "appVersion": "5.42.03",
            "description": "Metadata:\r\nMicroscope: Ti2 Microscope\r\n",
            "author": "Jane Doe",
            "sampleId": "mouse 42 of DOE^JOHN",
        },
        metadata=SimpleNamespace(channels=[channel, second]),
        attributes=SimpleNamespace(sequenceCount=220),
    )


def test_nd2_through_its_documented_api() -> None:
    found = FileMetadata(file_name="a.nd2")
    apply_nd2(found, fake_nd2())
    assert found.format == "nd2"
    assert (found.dimensions.t, found.dimensions.p, found.dimensions.z, found.dimensions.c) == (5, 2, 11, 2)
    assert (found.pixel_size_um.x, found.pixel_size_um.z) == (0.108, 0.3)
    assert [(c.name, c.excitation_nm, c.emission_nm) for c in found.channels] == [
        ("GFP", 488, 525), ("mCherry", 561, 610)
    ]  # fmt: skip
    assert found.objectives == [found.objectives[0]]  # the same objective is listed once
    assert (found.objectives[0].model, found.objectives[0].numerical_aperture) == ("Plan Apo λ 60x Oil", 1.4)
    assert found.instrument.model == "Ti2 Microscope"
    assert found.software == "NIS-Elements 5.42.03"
    assert found.acquisition_date == "2024-03-05T10:11:12"
    assert found.plane_count == 220
    output = found.model_dump_json()
    assert "Jane" not in output and "DOE" not in output


def test_vendor_headers_with_planted_names_never_leak_them(tmp_path: Path) -> None:
    canary = "CANARY_PERSON"
    emi = (VENDOR / "ser/64x64_TEM_images_acquire.emi").read_bytes().replace(b"ERIC", canary[:4].encode())
    (tmp_path / "a.emi").write_bytes(emi.replace(b"<Value>ERIC</Value>", f"<Value>{canary}</Value>".encode()))
    epu_source = VENDOR / "epu/epu-dir-example/Images-Disc1/GridSquare_8999138/GridSquare_20250108_151151.xml"
    (tmp_path / "square.xml").write_bytes(
        epu_source.read_bytes().replace(b"TITAN52336320</ComputerName>", f"{canary}</ComputerName>".encode())
    )
    scan = tmp_path / "18"
    shutil.copytree(VENDOR / "paravision/BadBanana_01/18", scan)
    acqp = (scan / "acqp").read_bytes().replace(b"<nmrsu>", f"<{canary}>".encode())
    (scan / "acqp").write_bytes(acqp.replace(b"Douglas Brain Imaging Center", canary.encode()))
    sif = (VENDOR / "sif/test.sif").read_bytes().replace(b"Imager", canary[:6].encode())
    (tmp_path / "b.sif").write_bytes(sif)
    for path in (tmp_path / "a.emi", tmp_path / "square.xml", scan / "acqp", tmp_path / "b.sif"):
        found = extract_metadata(path)
        assert found.format != "generic", path.name
        assert canary[:4] not in found.model_dump_json(), f"{path.name}: a planted name leaked"


def test_a_template_never_splits_an_ome_zarr_store(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(VENDOR / "ome-zarr/derived/s_1_t_1_c_1_z_1.ome.zarr", root / "run1/image.ome.zarr")
    rule = SimpleNamespace(group_by="folder", template=DatasetTemplate("{session}/{sample}/{level}"))
    keys = set()
    for rel in ("run1/image.ome.zarr/.zattrs", "run1/image.ome.zarr/s0/.zarray", "run1/image.ome.zarr/s1/0/0/0/0/0"):
        match = place(rule, rel, root / rel)  # type: ignore[arg-type]
        assert match is not None, rel
        keys.add(match.dataset_key)
    assert keys == {"run1/image.ome.zarr"}


def test_harvest_json_lists_each_unit_with_its_members() -> None:
    from agent.config.models import Instrument
    from agent.package.bagit import PayloadEntry
    from agent.package.sidecar import PackageFile, build_package

    scan = VENDOR / "paravision/BadBanana_01/18"
    files = []
    for path in sorted(scan.rglob("*")):
        if path.is_file():
            rel = path.relative_to(scan.parent).as_posix()
            metadata = json.loads(extract_metadata(path).model_dump_json())
            files.append(PackageFile(PayloadEntry(rel, "0" * 64, path.stat().st_size), rel, 0, metadata))
    package = build_package(
        Instrument(id="MR-7T"), dataset_key="s", archive_key="s", dataset_fields={}, revision=1, opened_at=0.0,
        closed_at=0.0, close_reason="idle", files=files, missing=[], now=0.0,
    )  # fmt: skip
    sidecar = json.loads(next(tag for tag in package.tag_files if tag.name == "harvest.json").content)
    assert sidecar["harvest_json_version"] == 2
    [unit] = sidecar["units"]
    assert unit["kind"] == "paravision-scan" and unit["anchor"] == "data/18/acqp" and unit["format"] == "paravision"
    assert "data/18/pdata/1/2dseq" in unit["members"]
    assert unit["member_count"] == len(files) - 1


def test_version_1_records_are_read() -> None:
    v1 = {
        "metadata_version": 1, "file_name": "a.tif", "format": "ome-tiff",
        "dimensions": {"x": 4, "y": 4, "z": 1, "c": 1, "t": 1}, "pixel_size_um": {"x": 0.1, "y": 0.1, "z": None},
        "instrument": {"manufacturer": "Zeiss", "model": None, "serial_number": None},
        "objectives": [{"magnification": 63, "numerical_aperture": 1.4, "immersion": "Oil", "model": None}],
        "channels": [{"name": "DAPI", "excitation_nm": 405, "emission_nm": 450}], "fileset": [], "warnings": [],
    }  # fmt: skip
    found = load_metadata(json.dumps(v1))
    assert found.metadata_version == 1 and found.electron is None and found.objectives[0].magnification == 63


def test_units_are_recognised_whatever_order_their_files_arrive_in(tmp_path: Path) -> None:
    rule = SimpleNamespace(group_by="folder", template=DatasetTemplate("{session}/{sample}/{level}"))
    chunk = tmp_path / "run1/late.ome.zarr/s0/0/0"
    chunk.parent.mkdir(parents=True)
    chunk.write_bytes(b"\0" * 16)  # a writer that saves chunks before the store's metadata
    match = place(rule, "run1/late.ome.zarr/s0/0/0", chunk)  # type: ignore[arg-type]
    assert match is not None and match.dataset_key == "run1/late.ome.zarr"
    scan = tmp_path / "study/9"
    scan.mkdir(parents=True)
    (scan / "fid").write_bytes(b"\0" * 16)
    assert extract_metadata(scan / "fid").unit is None  # no acqp yet: nothing claims it
    shutil.copy(VENDOR / "paravision/BadBanana_01/18/acqp", scan / "acqp")
    later = extract_metadata(scan / "fid")
    assert later.unit is not None and later.unit.kind == "paravision-scan" and later.unit.role == "member"


def test_a_batch_asks_a_missing_name_once_and_only_for_an_instant(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("agent.extract.bundles.time.monotonic", lambda: clock[0])
    scan = tmp_path / "study/7"
    scan.mkdir(parents=True)
    (scan / "fid").write_bytes(b"\0" * 16)
    with bundles.one_instant():
        assert bundles.unit_folder(scan / "fid") is None
        (scan / "acqp").write_bytes(b"##TITLE=x\n")
        # Within the instant the batch keeps the answer it had: the same race as a late acqp.
        assert bundles.unit_folder(scan / "fid") is None
        clock[0] += bundles.INSTANT_SECONDS
        assert bundles.unit_folder(scan / "fid") == scan  # the instant is over: asked again
    (scan / "acqp").unlink()
    other = tmp_path / "study/8"
    other.mkdir()
    (other / "fid").write_bytes(b"\0")
    with bundles.one_instant():
        assert bundles.unit_folder(other / "fid") is None
    (other / "acqp").write_bytes(b"##TITLE=y\n")
    assert bundles.unit_folder(other / "fid") == other  # outside a batch, always asked


def test_unit_folder_index_counts_folders_from_the_root(tmp_path: Path) -> None:
    scan = tmp_path / "user/study/5"
    (scan / "pdata/1").mkdir(parents=True)
    (scan / "acqp").write_bytes(b"##TITLE=x\n")
    assert bundles.unit_folder_index(tmp_path, "user/study/5/pdata/1/2dseq") == 2
    assert bundles.unit_folder_index(tmp_path, "user/study/5/fid") == 2
    assert bundles.unit_folder_index(tmp_path / "user/study/5", "pdata/1/2dseq") is None  # the root itself
    assert bundles.unit_folder_index(tmp_path, "user/other/file.tif") is None
    store = "run/a.ome.zarr/0/0/0"
    assert bundles.unit_folder_index(tmp_path, store) == 1  # the outermost .zarr folder, before its metadata
    assert bundles.unit_folder_index(tmp_path, "x.zarr/b.zarr/0/0") == 0

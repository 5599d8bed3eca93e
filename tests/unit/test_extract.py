"""Extractors on the real sample files: concrete values, malformed inputs, patient privacy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.extract import extract_metadata
from agent.extract import registry as registry_module
from agent.extract.model import FileMetadata
from tests.dicom_mutants import CANARIES, with_canaries
from tests.helpers import DATA

MALFORMED = sorted(path for path in (DATA / "malformed").rglob("*") if path.is_file())
DICOM_SAMPLES = sorted(path for path in (DATA / "dicom").rglob("*") if path.is_file())


def test_zeiss_ome_tiff_objective_pixel_size_and_date() -> None:
    metadata = extract_metadata(DATA / "ome-tiff/aics/s_1_t_1_c_1_z_1.ome.tiff")
    assert metadata.format == "ome-tiff"
    assert (metadata.dimensions.x, metadata.dimensions.y) == (475, 325)
    assert metadata.pixel_type == "uint16"
    assert metadata.pixel_size_um.x == pytest.approx(1.0833, abs=1e-4)
    assert metadata.pixel_size_um.y == pytest.approx(1.0833, abs=1e-4)
    assert metadata.acquisition_date == "2019-06-27T18:33:40.619000"
    assert len(metadata.objectives) == 1
    objective = metadata.objectives[0]
    assert (objective.magnification, objective.numerical_aperture, objective.immersion) == (20.0, 0.8, "Air")
    assert objective.model == "Plan-Apochromat 20x/0.8 M27"
    assert [channel.name for channel in metadata.channels] == ["Bright"]


def test_multifile_master_layout() -> None:
    master = extract_metadata(DATA / "ome-tiff/multifile-master/multifile-Z1.ome.tiff")
    assert master.fileset == [f"multifile-Z{index}.ome.tiff" for index in range(1, 6)]
    assert master.dimensions.z == 5 and master.plane_count == 5
    assert master.acquisition_date == "2010-03-02T15:08:59"
    part = extract_metadata(DATA / "ome-tiff/multifile-master/multifile-Z3.ome.tiff")
    assert part.format == "ome-tiff"
    assert part.companion == "multifile-Z1.ome.tiff" and part.fileset == ["multifile-Z1.ome.tiff"]


def test_multifile_companion_layout() -> None:
    companion = extract_metadata(DATA / "ome-tiff/multifile-companion/multifile.companion.ome")
    assert companion.format == "ome-xml"
    assert companion.fileset == [f"multifile-Z{index}.ome.tiff" for index in range(1, 6)]
    assert companion.acquisition_date == "2010-03-02T15:08:59"
    for index in range(1, 6):
        part = extract_metadata(DATA / f"ome-tiff/multifile-companion/multifile-Z{index}.ome.tiff")
        assert part.companion == "multifile.companion.ome"


def test_standalone_ome_xml_instrument_and_missing_fileset_members() -> None:
    instrument = extract_metadata(DATA / "ome-tiff/ome-xml/instrument.ome.xml")
    assert instrument.format == "ome-xml"
    objective = instrument.objectives[0]
    assert (objective.magnification, objective.numerical_aperture, objective.immersion) == (60.0, 1.2, "Air")
    tubhiswt = extract_metadata(DATA / "ome-tiff/ome-xml/tubhiswt.ome.xml")
    assert tubhiswt.fileset == ["tubhiswt_C0.ome.tif", "tubhiswt_C1.ome.tif"]
    assert (tubhiswt.dimensions.c, tubhiswt.dimensions.t) == (2, 20)
    assert tubhiswt.objectives[0].magnification == 100.0
    assert tubhiswt.objectives[0].numerical_aperture == 1.4
    assert tubhiswt.objectives[0].immersion == "Oil"


def test_imagej_and_micromanager_calibration() -> None:
    imagej = extract_metadata(DATA / "tiff/imagej/181003_slices/P1_T0.tif")
    assert imagej.format == "imagej-tiff"
    assert imagej.pixel_size_um.x == pytest.approx(5.2304, abs=1e-3)  # X/YResolution in cm
    micromanager = extract_metadata(DATA / "tiff/micromanager/181003_multi_pos_time_course_1_MMStack.ome.tif")
    assert micromanager.format == "micromanager-tiff"
    assert micromanager.pixel_size_um.x == pytest.approx(5.2304, abs=1e-3)
    assert micromanager.image_count == 2 and micromanager.dimensions.t == 10
    assert micromanager.software == "Micro-Manager 2.0.0-beta3 20160512"
    assert micromanager.micromanager is not None
    assert micromanager.micromanager["StartTime"] == "2018-10-03 13:54:41 -0700"
    assert "UserName" not in micromanager.micromanager


def test_plain_and_shaped_tiff() -> None:
    plain = extract_metadata(DATA / "tiff/plain/nonometif.tif")
    assert plain.format == "tiff" and (plain.dimensions.x, plain.dimensions.y) == (5, 5)
    assert plain.pixel_type == "uint8"
    rgb = extract_metadata(DATA / "tiff/plain/shapes_tiled_multi.tif")
    assert rgb.dimensions.c == 3 and rgb.plane_count == 3
    shaped = extract_metadata(DATA / "tiff/shaped/stardist_img3d.tif")
    assert (shaped.dimensions.x, shaped.dimensions.y, shaped.dimensions.z) == (57, 61, 31)


def test_dicom_series_uids_and_instance_numbers() -> None:
    ct = [extract_metadata(path) for path in sorted((DATA / "dicom/series/CT_5slice").iterdir())]
    assert {item.dicom.series_instance_uid for item in ct if item.dicom} == {
        ct[0].dicom.series_instance_uid if ct[0].dicom else None
    }
    assert [item.dicom.instance_number for item in ct if item.dicom] == [6, 7, 8, 9, 10]
    gap = [extract_metadata(path) for path in sorted((DATA / "dicom/series/CT_4slice_gap_noext").iterdir())]
    assert all(item.format == "dicom" for item in gap)  # detected by the DICM magic, no extension
    assert [item.dicom.instance_number for item in gap if item.dicom] == [18, 180, 181, 182]


def test_enhanced_and_whole_slide_dicom() -> None:
    enhanced = extract_metadata(DATA / "dicom/enhanced/emri_small.dcm")
    assert enhanced.dicom is not None and enhanced.dicom.number_of_frames == 10
    assert enhanced.dimensions.z == 10
    slide = extract_metadata(DATA / "dicom/enhanced/sm_image.dcm")
    assert slide.dicom is not None and slide.dicom.modality == "SM"
    assert slide.dicom.number_of_frames == 25
    assert slide.pixel_size_um.x == pytest.approx(0.499, abs=1e-6)
    implicit = extract_metadata(DATA / "dicom/single/MR_small_implicit.dcm")
    assert implicit.dicom is not None and implicit.dicom.transfer_syntax_uid == "1.2.840.10008.1.2"
    assert implicit.dicom.modality == "MR" and implicit.pixel_type == "int16"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("path", MALFORMED, ids=lambda path: path.name)
def test_malformed_files_give_warnings_never_errors(path: Path) -> None:
    metadata = extract_metadata(path)
    assert metadata.size_bytes == path.stat().st_size
    json.loads(metadata.model_dump_json())
    expected_warning = path.name not in {"MR_truncated.dcm"}  # its header is intact: only pixels are short
    if expected_warning:
        assert metadata.warnings, f"{path.name}: a malformed file must carry a warning"


def test_specific_malformed_outcomes() -> None:
    assert extract_metadata(DATA / "malformed/tiff/empty_0byte.tif").format == "generic"
    bad_vr = " ".join(extract_metadata(DATA / "malformed/dicom/badVR.dcm").warnings)
    assert "NumberOfFrames" in bad_vr and "1A" not in bad_vr  # the attribute is named, never its value
    no_meta = extract_metadata(DATA / "malformed/dicom/no_meta.dcm")
    assert no_meta.format == "dicom" and any("preamble" in warning for warning in no_meta.warnings)
    bad = extract_metadata(DATA / "malformed/ome-xml/bad.ome.xml")
    assert any("SizeC=3" in warning for warning in bad.warnings)
    truncated = extract_metadata(DATA / "malformed/tiff/z-series_truncated_200000B.ome.tif")
    assert truncated.format == "tiff"  # the OME-XML at the end of the file was cut off


@pytest.mark.parametrize("path", DICOM_SAMPLES, ids=lambda path: path.name)
def test_no_patient_attribute_value_is_ever_extracted(path: Path, tmp_path: Path) -> None:
    planted = with_canaries(path, tmp_path / f"{path.name}.dcm")
    metadata = extract_metadata(planted)
    assert metadata.format == "dicom"
    output = metadata.model_dump_json()
    for value in CANARIES.values():
        for part in value.split("^"):
            assert part not in output, f"{path.name}: patient value {part!r} leaked"


def test_output_keys_are_named_as_documented() -> None:
    data = json.loads(extract_metadata(DATA / "dicom/single/CT_small.dcm").model_dump_json())
    for key in ("format", "acquisition_date", "dimensions", "pixel_size_um", "instrument", "objectives",
                "channels", "fileset", "warnings", "dicom"):  # fmt: skip
        assert key in data
    assert set(data["dimensions"]) == {"x", "y", "z", "c", "t", "s", "m", "h", "p", "spectral"}
    assert set(data["pixel_size_um"]) == {"x", "y", "z"}
    assert set(data["instrument"]) == {"manufacturer", "model", "serial_number", "system"}
    assert {
        "modality", "sop_class_uid", "study_instance_uid", "series_instance_uid", "sop_instance_uid",
        "manufacturer", "model", "station_name", "series_description", "number_of_frames", "instance_number",
    } <= set(data["dicom"])  # fmt: skip


def test_plugin_extractors_come_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class FakeCzi:
        name = "czi"

        def accepts(self, head: bytes, path: Path) -> bool:
            return head.startswith(b"ZISRAWFILE")

        def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
            metadata.software = "ZEN (fake plug-in)"
            return metadata

    class EntryPoint:
        name = "czi"

        def load(self) -> type[FakeCzi]:
            return FakeCzi

    monkeypatch.setattr(registry_module, "entry_points", lambda group: [EntryPoint()])
    registry_module.extractors.cache_clear()
    try:
        sample = tmp_path / "a.czi"
        sample.write_bytes(b"ZISRAWFILE" + b"\0" * 100)
        assert extract_metadata(sample).software == "ZEN (fake plug-in)"
    finally:
        registry_module.extractors.cache_clear()


def test_published_metadata_schema_is_current_and_validates_output() -> None:
    import jsonschema

    from agent.extract.model import metadata_json_schema

    published = json.loads((Path(__file__).parents[2] / "docs/schemas/metadata-2.schema.json").read_text())
    assert published == metadata_json_schema(), (
        "run: python -m agent.extract.model > docs/schemas/metadata-2.schema.json"
    )
    for path in [*DICOM_SAMPLES, *MALFORMED, *sorted((DATA / "ome-tiff").rglob("*.ome.tif*"))]:
        jsonschema.validate(json.loads(extract_metadata(path).model_dump_json()), published)


def test_an_ome_xml_with_huge_channel_counts_is_summarised_by_its_first_channels(tmp_path: Path) -> None:
    from agent.extract.ome import MAX_CHANNELS

    count = 20_000
    channels = "".join(f'<Channel ID="Channel:0:{n}" Name="c{n}" SamplesPerPixel="1"/>' for n in range(count))
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="1" SizeY="1"'
        f' SizeZ="1" SizeC="{count}" SizeT="1">{channels}</Pixels></Image></OME>'
    )
    path = tmp_path / "many.ome.xml"
    path.write_text(xml)
    metadata = extract_metadata(path)
    assert metadata.format != "generic", metadata.warnings
    assert len(metadata.channels) == MAX_CHANNELS
    assert any(f"more than {MAX_CHANNELS} channels" in warning for warning in metadata.warnings)
    assert not any("SizeC" in warning for warning in metadata.warnings)

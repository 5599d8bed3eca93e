"""Instruments' own formats: specific values from real files, header-only, and no traceback
(only a warning) for a truncated or corrupt copy of each."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import mrcfile
import nibabel
import numpy as np
import pytest
from mrcfile.dtypes import get_ext_header_dtype

from agent.extract import extract_metadata
from agent.extract.model import FileMetadata

VENDOR = Path(__file__).parents[1] / "data" / "vendor"


def read(relative: str) -> FileMetadata:
    return extract_metadata(VENDOR / relative)


def test_czi_axio_observer() -> None:
    found = read("czi/s_1_t_1_c_1_z_1.czi")
    assert found.format == "czi"
    assert found.objectives[0].model == "Plan-Apochromat 20x/0.8 M27"
    assert found.objectives[0].numerical_aperture == 0.8
    assert found.objectives[0].magnification == 20
    assert found.objectives[0].immersion == "Air"
    assert found.pixel_size_um.x == pytest.approx(1.0833, abs=1e-4)
    assert (found.dimensions.x, found.dimensions.y, found.dimensions.c) == (475, 325, 1)
    assert found.instrument.model == "Axio Observer.Z1 / 7"
    assert found.channels[0].name == "Bright"
    assert found.channels[0].acquisition_mode == "SpinningDiskConfocal"
    assert found.acquisition_date is not None and found.acquisition_date.startswith("2019-06-27T18:33:40")
    assert found.software is not None and found.software.startswith("ZEN 2.3")
    assert "ruiany" not in found.model_dump_json()  # Document/UserName is never read


def test_czi_airyscan_phases_and_mosaic_scenes() -> None:
    airyscan = read("czi/LSM880_AiryScan.czi")
    assert (airyscan.dimensions.c, airyscan.dimensions.h) == (8, 32)
    assert airyscan.instrument.system == "LSM 880, AxioObserver"
    assert [channel.excitation_nm for channel in airyscan.channels] == [633, 561, 488, 405]
    assert airyscan.pixel_size_um.x == pytest.approx(0.0353, abs=1e-4)
    assert airyscan.pixel_size_um.z == pytest.approx(0.1595, abs=1e-4)
    assert airyscan.objectives[0].numerical_aperture == pytest.approx(1.4)
    mosaic = read("czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi")
    assert (mosaic.dimensions.s, mosaic.dimensions.m) == (3, 17)
    assert [image.name for image in mosaic.images] == ["TR1", "P1", "TR2"]
    assert mosaic.instrument.model == "Celldiscoverer 7"
    assert mosaic.channels[0].fluorophore == "DAPI"
    assert (mosaic.channels[0].excitation_nm, mosaic.channels[0].emission_nm) == (353, 465)
    assert mosaic.pixel_size_um.x == pytest.approx(1.6)


def test_lif_lists_every_image_with_its_spectral_sweep() -> None:
    found = read("lif/LeicaLASX_wavelength-sweep_example.lif")
    assert found.format == "lif"
    assert found.image_count == 3
    assert [image.dimensions.spectral for image in found.images] == [20, 15, 10]
    assert (found.images[2].dimensions.z, found.images[2].dimensions.t) == (11, 2)
    assert found.images[2].pixel_size_um.z == pytest.approx(0.5002, abs=1e-4)
    assert found.pixel_size_um.x == pytest.approx(0.1048, abs=1e-4)
    assert found.instrument.model == "DMI6000B-CS"
    assert found.instrument.system == "TCS SP8"
    assert found.instrument.serial_number == "8100000201"
    assert found.objectives[0].model == "HC PL APO CS2 63x/1.30 GLYC"
    assert found.objectives[0].numerical_aperture == 1.3
    assert found.software == "LAS X 3.5.7.23225"
    assert found.acquisition_date is not None and found.acquisition_date.startswith("2021-01-29")


def test_mrc_maps() -> None:
    anisotropic = read("mrc/EMD-3001.map")
    assert anisotropic.format == "mrc"
    assert (anisotropic.dimensions.x, anisotropic.dimensions.y, anisotropic.dimensions.z) == (73, 43, 25)
    assert anisotropic.electron is not None
    assert anisotropic.electron.pixel_size_nm.x == pytest.approx(0.044825)
    assert anisotropic.electron.pixel_size_nm.y == pytest.approx(0.03925)
    cubic = read("mrc/EMD-3197.map")
    assert cubic.pixel_type == "float32"
    assert cubic.electron is not None and cubic.electron.pixel_size_nm.z == pytest.approx(1.14)


def test_mrc_fei1_extended_header(tmp_path: Path) -> None:
    extended = np.zeros(2, dtype=get_ext_header_dtype(b"FEI1"))
    extended["Metadata size"] = extended.dtype.itemsize
    extended["HT"], extended["Magnification"] = 300_000, 105_000
    extended["Pixel size X"] = extended["Pixel size Y"] = 0.83e-10
    extended["Dose"], extended["Integration time"] = 1.2e20, 2.5
    extended["Camera name"], extended["Microscope type"] = b"BM-Falcon", b"TITAN52336320"
    extended["Defocus"] = -1.5e-6
    extended["Input stack filename"] = b"C:\\Users\\jdoe\\stack.mrc"
    with mrcfile.new(tmp_path / "movie.mrc") as written:
        written.set_data(np.zeros((2, 8, 8), dtype=np.float32))
        written.set_extended_header(extended)
        written.header.exttyp = b"FEI1"
    found = extract_metadata(tmp_path / "movie.mrc")
    assert found.electron is not None
    assert found.electron.extended_header == "FEI1"
    assert found.electron.accelerating_voltage_kv == 300
    assert found.electron.magnification == 105_000
    assert found.electron.pixel_size_nm.x == pytest.approx(0.083)
    assert found.electron.dose_e_per_a2 == pytest.approx(1.2)
    assert found.electron.exposure_ms == pytest.approx(2500)
    assert found.electron.detector == "BM-Falcon"
    assert found.electron.defocus_um == pytest.approx(-1.5)
    assert "jdoe" not in found.model_dump_json()


def test_dm3_stem_and_dm4_sem() -> None:
    stem = read("dm3/test_STEM_image.dm3")
    assert stem.format == "dm3" and stem.electron is not None
    assert stem.instrument.model == "FEI Tecnai Remote"
    assert stem.electron.accelerating_voltage_kv == 200
    assert stem.electron.magnification == 225_000
    assert stem.electron.camera_length_mm == 135
    assert stem.electron.mode is not None and stem.electron.mode.startswith("STEM")
    assert stem.electron.pixel_size_nm.x == pytest.approx(0.2485, abs=1e-4)
    assert (stem.dimensions.x, stem.dimensions.y, stem.pixel_type) == (68, 68, "uint32")
    assert stem.acquisition_date == "2016-08-08T16:26:37"
    sem = read("dm4/test-MonarcCL_mono-image.dm4")
    assert sem.format == "dm4" and sem.electron is not None
    assert sem.instrument.model == "Zeiss SEM COM"
    assert (sem.electron.accelerating_voltage_kv, sem.electron.magnification, sem.electron.mode) == (3, 2500, "SEM")
    assert sem.acquisition_date is not None and sem.acquisition_date.startswith("2021-05-14")


def test_ser_with_its_emi_is_one_acquisition() -> None:
    series = read("ser/64x64_TEM_images_acquire_1.ser")
    assert series.format == "tia-ser" and series.electron is not None
    assert series.companion == "64x64_TEM_images_acquire.emi"
    assert series.unit is not None and series.unit.role == "member"
    assert series.instrument.model == "Tecnai 200 kV D2267 SuperTwin"
    assert series.electron.accelerating_voltage_kv == 200
    assert series.electron.magnification == 19_500
    assert series.electron.detector == "WA-Orius"
    assert series.electron.pixel_size_nm.x == pytest.approx(6.28, abs=0.01)
    assert (series.dimensions.x, series.dimensions.y) == (64, 64)
    emi = read("ser/64x64_TEM_images_acquire.emi")
    assert emi.format == "tia-emi" and emi.unit is not None and emi.unit.role == "anchor"
    assert "ERIC" not in series.model_dump_json() + emi.model_dump_json()  # the EMI's User entry


def test_velox_emd() -> None:
    found = read("emd/Camera Ceta Imaging Micro.emd")
    assert found.format == "velox-emd" and found.electron is not None
    assert found.instrument.model == "Titan 3580"
    assert found.electron.accelerating_voltage_kv == 300
    assert found.electron.magnification == pytest.approx(26996, abs=1)
    assert found.electron.detector == "BM-Ceta"
    assert found.electron.mode is not None and found.electron.mode.startswith("TEM")
    assert found.electron.pixel_size_nm.x == pytest.approx(3.14, abs=0.01)
    assert found.acquisition_date is not None and found.acquisition_date.startswith("2020-07-29")
    assert "THEMISX" not in found.model_dump_json()  # the computer name is never read


def test_berkeley_emd_is_told_from_velox(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "berkeley.emd", "w") as handle:
        handle.attrs["version_major"], handle.attrs["version_minor"] = 0, 2
        group = handle.create_group("data/image")
        group.attrs["emd_group_type"] = 1
        group["data"] = np.zeros((4, 6), dtype=np.uint16)
        group["dim1"] = np.arange(4) * 0.5
        group["dim1"].attrs["units"] = "nm"
        group["dim2"] = np.arange(6) * 0.5
        group["dim2"].attrs["units"] = "nm"
    found = extract_metadata(tmp_path / "berkeley.emd")
    assert found.format == "berkeley-emd"
    assert (found.dimensions.x, found.dimensions.y) == (6, 4)
    assert found.pixel_size_um.x == pytest.approx(0.0005)


def test_epu_movie_xml_and_session() -> None:
    folder = "epu/epu-dir-example/Images-Disc1/GridSquare_8999138"
    movie = read(f"{folder}/Data/FoilHole_9015883_Data_9017347_6_20250108_154915.xml")
    assert movie.format == "epu-xml" and movie.electron is not None
    assert movie.electron.accelerating_voltage_kv == 300
    assert movie.electron.magnification == 165_000
    assert movie.electron.pixel_size_nm.x == pytest.approx(0.10559, abs=1e-5)
    assert movie.electron.exposure_ms == pytest.approx(890)
    assert movie.electron.dose_e_per_a2 == pytest.approx(16.07, abs=0.01)
    assert movie.electron.defocus_um == pytest.approx(-2.7)
    assert movie.electron.detector is not None and "BioQuantum K3" in movie.electron.detector
    assert movie.software == "EPU 3.9.1.8206"
    assert movie.unit is not None and movie.unit.role == "anchor"
    preview = read(f"{folder}/Data/FoilHole_9015883_Data_9017347_6_20250108_154915.jpg")
    assert preview.unit is not None and preview.unit.role == "member"
    square = read(f"{folder}/GridSquare_20250108_151151.xml")
    assert square.electron is not None and square.electron.magnification == 470
    session = read("epu/epu-dir-example/EpuSession.dm")
    assert session.format == "epu-session" and session.software == "EPU 3.9.1.8206"


def test_serialem_mdoc() -> None:
    found = read("serialem-mdoc/tilt_series.mdoc")
    assert found.format == "serialem-mdoc" and found.electron is not None
    assert found.instrument.model == "EMBL Krios"
    assert found.electron.magnification == 105_000
    assert found.electron.pixel_size_nm.x == pytest.approx(0.54)
    assert len(found.electron.tilt_angles_deg) == 41
    assert min(found.electron.tilt_angles_deg) == pytest.approx(-60, abs=0.01)
    assert "Flo" not in found.model_dump_json()  # SubFramePath names the user's folder


def test_paravision_scan_folder() -> None:
    found = read("paravision/BadBanana_01/18/acqp")
    assert found.format == "paravision" and found.mr is not None
    assert found.mr.field_strength_t == pytest.approx(7.05, abs=0.01)
    assert found.mr.method == "EPI"
    assert found.mr.echo_time_ms == 16.5
    assert found.mr.repetition_time_ms == 2000
    assert found.mr.flip_angle_deg == 90
    assert found.mr.fov_mm == [44, 44]
    assert found.mr.matrix == [80, 64]
    assert (found.mr.slice_thickness_mm, found.mr.slices) == (1.5, 5)
    assert found.instrument.model == "BioSpec 70/30 USR"
    assert found.software == "ParaVision 5.1"
    assert found.acquisition_date is not None and found.acquisition_date.startswith("2011-11-30")
    output = found.model_dump_json()
    for personal in ("nmrsu", "Douglas", "APM_Fruits", "Banana"):
        assert personal not in output
    member = read("paravision/BadBanana_01/18/pdata/1/2dseq")
    assert member.format == "generic" and member.unit is not None and member.unit.path == "../../acqp"


def test_nifti() -> None:
    found = read("nifti/anatomical.nii")
    assert found.format == "nifti" and found.nifti is not None
    assert (found.dimensions.x, found.dimensions.y, found.dimensions.z) == (33, 41, 25)
    assert found.nifti.voxel_size == [2, 2, 2] and found.nifti.spatial_unit == "mm"
    assert found.pixel_size_um.x == 2000
    assert (found.nifti.qform_code, found.nifti.sform_code) == (2, 2)
    assert found.nifti.description == "spm - 3D normalized"


def test_nifti_written_by_nibabel_gz(tmp_path: Path) -> None:
    image = nibabel.Nifti1Image(np.zeros((10, 12, 3, 4), dtype=np.int16), np.eye(4))
    image.header.set_zooms((0.5, 0.5, 2.0, 1.5))
    image.header.set_xyzt_units("mm", "sec")
    nibabel.save(image, tmp_path / "bold.nii.gz")
    found = extract_metadata(tmp_path / "bold.nii.gz")
    assert found.format == "nifti" and found.nifti is not None
    assert found.dimensions.t == 4
    assert found.nifti.repetition_time_ms == 1500


def test_ome_zarr_image_and_plate() -> None:
    image = extract_metadata(VENDOR / "ome-zarr/derived/s_1_t_1_c_1_z_1.ome.zarr/.zattrs")
    assert image.format == "ome-zarr"
    assert image.pixel_size_um.x == pytest.approx(1.0833, abs=1e-4)
    assert (image.dimensions.x, image.dimensions.y) == (475, 325)
    assert image.channels[0].name == "Bright"
    assert image.unit is not None and image.unit.role == "anchor"
    plate = extract_metadata(VENDOR / "ome-zarr/hcs_example.ome.zarr/.zattrs")
    assert plate.plate is not None and (plate.plate.rows, plate.plate.columns, plate.plate.wells) == (1, 1, 1)
    assert plate.pixel_size_um.x == pytest.approx(0.1625)
    assert plate.channels[0].name == "DAPI"
    chunk = extract_metadata(VENDOR / "ome-zarr/derived/s_1_t_1_c_1_z_1.ome.zarr/s0/0/0/0/0/0")
    assert chunk.format == "generic" and chunk.unit is not None and chunk.unit.role == "member"


def test_svs_slide() -> None:
    found = read("svs/cmu_small_region.svs")
    assert found.format == "svs"
    assert found.objectives[0].magnification == 20
    assert found.pixel_size_um.x == pytest.approx(0.499)
    assert found.instrument.model == "CPAPERIOCS"
    assert found.acquisition_date == "2009-12-29T09:59:15"


def test_vsi_with_its_ets_folder() -> None:
    found = read("vsi/vsi-ets-test-jpg2k.vsi")
    assert found.format == "vsi"
    assert (found.dimensions.z, found.dimensions.c) == (11, 2)
    assert {found.dimensions.x, found.dimensions.y} == {1682, 1645}
    assert found.pixel_type == "uint16"
    assert found.unit is not None and found.unit.role == "anchor"
    assert "ferranda" not in found.model_dump_json()  # the TIFF Artist tag
    tiles = read("vsi/_vsi-ets-test-jpg2k_/stack1/frame_t_0.ets")
    assert tiles.unit is not None and tiles.unit.role == "member"


def test_sif() -> None:
    found = read("sif/test.sif")
    assert found.format == "sif" and found.camera is not None
    assert found.camera.model == "DU897_BV"
    assert found.camera.exposure_ms == pytest.approx(14.57)
    assert found.camera.em_gain == 56
    assert (found.dimensions.x, found.dimensions.y) == (256, 256)
    assert found.acquisition_date is not None and found.acquisition_date.startswith("2023-11-28")
    assert "Imager" not in found.model_dump_json()  # OriginalFilename: C:\Users\Imager\...


SINGLE_FILES = [
    "czi/s_1_t_1_c_1_z_1.czi", "lif/LeicaLASX_wavelength-sweep_example.lif", "mrc/EMD-3001.map",
    "dm3/test_STEM_image.dm3", "dm4/test-MonarcCL_mono-image.dm4", "ser/64x64_TEM_images_acquire_1.ser",
    "emd/Camera Ceta Imaging Micro.emd", "nifti/anatomical.nii", "sif/test.sif", "svs/cmu_small_region.svs",
    "serialem-mdoc/tilt_series.mdoc", "epu/epu-dir-example/EpuSession.dm",
]  # fmt: skip


@pytest.mark.parametrize("relative", SINGLE_FILES)
@pytest.mark.parametrize("keep", [0.05, 0.5])
def test_truncated_copy_gives_a_warning_or_less_never_a_traceback(
    relative: str, keep: float, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = VENDOR / relative
    target = tmp_path / source.name
    data = source.read_bytes()
    target.write_bytes(data[: max(64, int(len(data) * keep))])
    found = extract_metadata(target)
    whole = extract_metadata(source)
    assert found.format in (whole.format, "generic", "tiff")
    if found.format == "generic":
        assert found.warnings, f"{relative}: a rejected file must say why"
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("relative", SINGLE_FILES)
def test_corrupt_copy_never_raises(relative: str, tmp_path: Path) -> None:
    source = VENDOR / relative
    data = bytearray(source.read_bytes())
    for offset in range(16, min(len(data), 4096), 97):
        data[offset] ^= 0x5A
    target = tmp_path / source.name
    target.write_bytes(bytes(data))
    extract_metadata(target)  # a warning at most


def test_paravision_scan_missing_its_method_still_reads(tmp_path: Path) -> None:
    scan = tmp_path / "7"
    shutil.copytree(VENDOR / "paravision/BadBanana_01/18", scan)
    (scan / "method").unlink()
    found = extract_metadata(scan / "acqp")
    assert found.mr is not None and found.mr.echo_time_ms == 16.5

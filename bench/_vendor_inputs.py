"""Vendor-format inputs for bench_extract.py: every real sample in tests/data/vendor, and
large files written by the formats' own libraries (MRC with mrcfile, NIfTI with nibabel,
an OME-Zarr store with 10,000 chunk files, Velox-like HDF5 with h5py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import mrcfile
import nibabel
import numpy as np

VENDOR = Path(__file__).parents[1] / "tests/data/vendor"
SAMPLES = (
    "czi/s_1_t_1_c_1_z_1.czi", "czi/LSM880_AiryScan.czi", "czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi",
    "lif/LeicaLASX_wavelength-sweep_example.lif", "mrc/EMD-3001.map", "dm3/test_STEM_image.dm3",
    "dm4/test-MonarcCL_mono-image.dm4", "ser/64x64_TEM_images_acquire_1.ser", "ser/64x64_TEM_images_acquire.emi",
    "emd/Camera Ceta Imaging Micro.emd",
    "epu/epu-dir-example/Images-Disc1/GridSquare_8999138/Data/FoilHole_9015883_Data_9017347_6_20250108_154915.xml",
    "epu/epu-dir-example/EpuSession.dm", "serialem-mdoc/tilt_series.mdoc", "paravision/BadBanana_01/18/acqp",
    "paravision/BadBanana_01/18/fid", "nifti/anatomical.nii", "ome-zarr/hcs_example.ome.zarr/.zattrs",
    "svs/cmu_small_region.svs", "vsi/vsi-ets-test-jpg2k.vsi", "sif/test.sif",
)  # fmt: skip


def samples() -> Iterator[tuple[str, Path]]:
    for relative in SAMPLES:
        yield relative, VENDOR / relative


def large_files(workdir: Path, gib: float) -> Iterator[tuple[str, Path]]:
    """Yield (label, path); each file is removed after the caller moves on."""
    size = int(gib * (1 << 30))
    side = 4096
    planes = max(1, size // (side * side * 2))
    path = workdir / "big.mrc"
    with mrcfile.new_mmap(path, shape=(planes, side, side), mrc_mode=1, overwrite=True) as written:
        written.voxel_size = 0.83
    yield f"MRC {planes}x{side}x{side} int16 (mrcfile)", path
    path.unlink()
    path = workdir / "big.nii"
    image = nibabel.Nifti1Image(np.zeros((256, 256, 64, max(1, size // (256 * 256 * 64 * 2))), np.int16), np.eye(4))  # type: ignore[no-untyped-call]
    nibabel.save(image, path)
    yield "NIfTI-1 4-D int16 (nibabel)", path
    path.unlink()
    path = workdir / "big.emd"
    with h5py.File(path, "w") as handle:
        handle["Version"] = [json.dumps({"version": "11", "format": "Velox"}).encode()]
        group = handle.create_group("Data/Image/0")
        group.create_dataset("Data", shape=(4096, 4096, max(1, size // (4096 * 4096 * 2))), dtype=np.int16)
        group["Metadata"] = np.frombuffer(json.dumps({"Optics": {"AccelerationVoltage": "300000"}}).encode(),
                                          np.uint8).reshape(-1, 1)  # fmt: skip
    yield "Velox-style EMD, HDF5 (h5py)", path
    path.unlink()
    store = workdir / "big.ome.zarr"
    shutil.copytree(VENDOR / "ome-zarr/derived/s_1_t_1_c_1_z_1.ome.zarr", store)
    chunks = store / "s0" / "0" / "0" / "0"
    for index in range(10_000):
        folder = chunks / str(index // 100)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(index % 100)).write_bytes(b"\0" * 64)
    yield "OME-Zarr anchor of a 10,000-chunk store", store / ".zattrs"
    yield "OME-Zarr chunk (a unit member)", chunks / "99" / "99"
    shutil.rmtree(store)

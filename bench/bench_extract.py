"""Metadata extraction cost: must not grow with pixel data.

Generates OME-TIFFs of 10 MB, 500 MB and 2 GiB (tifffile), a DICOM series of 500
instances (from the CT sample), and a standalone OME-XML describing 10,000 planes, then
reports per-file extraction time (median of repeated runs) and, for the big XML, peak
Python memory (tracemalloc).

Every extraction includes the structural completeness check (``agent.extract.whole``),
which is also timed on its own ("of which: whole?"), including a 10,000-IFD TIFF, the
worst case for the IFD-chain walk.

Usage: python bench/bench_extract.py [--workdir DIR] [--repeat 5] [--vendor-gib 1] [--vendor-only]
Goals: < 50 ms per OME-TIFF regardless of size (check included); < 5 ms per DICOM instance.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import tifffile
from _vendor_inputs import large_files, samples

from agent.extract import extract_metadata
from agent.extract.whole import check_file

SAMPLE_CT = Path(__file__).parents[1] / "tests/data/dicom/single/CT_small.dcm"


def make_ome_tiff(path: Path, total_bytes: int) -> None:
    plane = np.zeros((1024, 1024), dtype=np.uint16)  # 2 MiB per plane
    planes = max(1, total_bytes // plane.nbytes)
    with tifffile.TiffWriter(path, bigtiff=total_bytes > (3 << 30) or planes > 1000, ome=True) as writer:
        writer.write(
            np.broadcast_to(plane, (planes, *plane.shape)),
            photometric="minisblack",
            metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.5},
        )


def make_dicom_series(folder: Path, count: int) -> list[Path]:
    template = pydicom.dcmread(SAMPLE_CT)
    series_uid = pydicom.uid.generate_uid()
    paths = []
    for index in range(count):
        template.SeriesInstanceUID = series_uid
        template.SOPInstanceUID = pydicom.uid.generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = index + 1
        path = folder / f"IM{index:05d}.dcm"
        template.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def make_big_ome_xml(path: Path, planes: int) -> None:
    file_uuid = f"urn:uuid:{uuid.uuid4()}"
    plane_xml = "".join(f'<Plane TheZ="{z}" TheC="0" TheT="0" DeltaT="{z * 0.1:.1f}"/>' for z in range(planes))
    tiff_xml = "".join(
        f'<TiffData IFD="0" FirstZ="{z}" PlaneCount="1"><UUID FileName="plane_{z:05d}.ome.tif">'
        f"{file_uuid}</UUID></TiffData>"
        for z in range(planes)
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" Creator="bench">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="512" SizeY="512"'
        f' SizeZ="{planes}" SizeC="1" SizeT="1" PhysicalSizeX="0.2" PhysicalSizeXUnit="µm">'
        f'<Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tiff_xml}{plane_xml}</Pixels></Image></OME>',
        encoding="utf-8",
    )


def timed(path: Path, repeat: int, read: Callable[[Path], object] = extract_metadata) -> float:
    """Median milliseconds of *read* (the whole extraction by default) on *path*."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        read(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def timed_check(path: Path, repeat: int) -> float:
    return timed(path, repeat, check_file)


def bench_vendor(workdir: Path, repeat: int, gib: float) -> None:
    """Every vendor sample (first call, with the reader's import, and the median after), then
    large files written by the formats' own libraries."""
    print("| vendor input | format | file size | first call | median after | of which: whole? |")
    print("|---|---|---|---|---|---|")
    for label, path in itertools.chain(samples(), large_files(workdir, gib)):
        started = time.perf_counter()
        found = extract_metadata(path)
        first = (time.perf_counter() - started) * 1000
        print(f"| {label} | {found.format} | {path.stat().st_size / 2**20:,.1f} MiB | {first:.1f} ms |"
              f" {timed(path, repeat):.1f} ms | {timed_check(path, repeat):.2f} ms |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--vendor-gib", type=float, default=1.0, help="size of the large vendor files")
    parser.add_argument("--vendor-only", action="store_true")
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="harvest-bench-extract-", dir=arguments.workdir))
    try:
        extract_metadata(SAMPLE_CT)  # warm imports
        if arguments.vendor_only:
            bench_vendor(workdir, arguments.repeat, arguments.vendor_gib)
            return
        print("| input | file size | extraction per file (median) | of which: whole? |\n|---|---|---|---|")
        xml_path = workdir / "big.ome.xml"
        make_big_ome_xml(xml_path, 10_000)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        metadata = extract_metadata(xml_path)
        elapsed = (time.perf_counter() - started) * 1000
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        tracemalloc.start()
        extract_metadata(xml_path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(metadata.fileset) == 10_000 and metadata.dimensions.z == 10_000
        print(f"| OME-XML, 10,000 planes + 10,000 TiffData | {xml_path.stat().st_size / 2**20:.1f} MiB |"
              f" {elapsed:.0f} ms; peak RSS growth {rss_growth:.0f} MiB,"
              f" Python objects {peak / 2**20:.0f} MiB |")  # fmt: skip
        for label, size in (("OME-TIFF", 10 * 10**6), ("OME-TIFF", 500 * 10**6), ("OME-TIFF", 2 << 30)):
            path = workdir / f"stack_{size}.ome.tif"
            make_ome_tiff(path, size)
            metadata = extract_metadata(path)
            assert metadata.format == "ome-tiff" and metadata.dimensions.z, metadata
            extraction, check = timed(path, arguments.repeat), timed_check(path, arguments.repeat)
            print(f"| {label} ({metadata.dimensions.z} planes) | {path.stat().st_size / 2**20:,.0f} MiB |"
                  f" {extraction:.1f} ms | {check:.2f} ms |")  # fmt: skip
            path.unlink()
        many = workdir / "many_ifds.tif"
        with tifffile.TiffWriter(many) as writer:
            for _ in range(10_000):
                writer.write(np.zeros((16, 16), np.uint8), contiguous=False)
        assert check_file(many).declared == 10_000
        print(f"| TIFF, 10,000 IFDs | {many.stat().st_size / 2**20:,.1f} MiB | {timed(many, arguments.repeat):.1f} ms |"
              f" {timed_check(many, arguments.repeat):.2f} ms |")  # fmt: skip
        series = workdir / "series"
        series.mkdir()
        paths = make_dicom_series(series, 500)
        started = time.perf_counter()
        for path in paths:
            assert extract_metadata(path).dicom is not None
        per_instance = (time.perf_counter() - started) / len(paths) * 1000
        print(f"| DICOM CT series, 500 instances | {paths[0].stat().st_size / 1024:.0f} KiB each |"
              f" {per_instance:.2f} ms per instance | {timed_check(paths[0], arguments.repeat):.2f} ms |")  # fmt: skip
        bench_vendor(workdir, arguments.repeat, arguments.vendor_gib)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

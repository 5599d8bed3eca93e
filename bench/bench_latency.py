"""Latency of a declared-complete acquisition: last byte written -> committed at the archive.

The agent runs as a daemon (``python -m agent run``) with ``quiet_seconds: 2`` and
``dataset_idle_seconds: 300`` and a filesystem destination. Each acquisition is written
into the watched folder file by file; the clock starts when the last file is closed and
stops when the bag's ``tagmanifest-sha256.txt`` (written last, at commit) appears.

Acquisitions (each declares its extent):
- ``ome-fileset``: 20 single-plane OME-TIFF files, each naming all 20 (TiffData UUID FileName);
- ``dicom-series``: 50 CT instances declaring ImagesInAcquisition = 50;
- ``micromanager``: the real Micro-Manager 2.0 MMStack sample (20 images, index map).

Baseline, interleaved in the same run: the same agent with ``close_on_declared: false``
and a shorter idle time (``--baseline-idle``, default 20 s) - the timer-only rule every
other tool uses; with the production idle of 300 s it would be quiet + 300 s.

Goal: latency <= quiet + 3 s (5 s). Usage:
    python bench/bench_latency.py [--rounds 3] [--baseline-idle 20] [--workdir DIR]
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy
import pydicom
import tifffile
import yaml

ROOT = Path(__file__).parents[1]
DATA = ROOT / "tests" / "data"
QUIET = 2.0
IDLE = 300.0
GOAL = QUIET + 3.0


def _config(workdir: Path, name: str, *, declared: bool, idle: float) -> Path:
    config = {
        "version": 1,
        "instrument": {"id": "BENCH-01"},
        "state_dir": str(workdir / f"state-{name}"),
        "watch": [{"path": str(workdir / f"src-{name}"), "dataset": "{operator}/{session}"}],
        "settle": {"quiet_seconds": QUIET, "dataset_idle_seconds": idle, "close_on_declared": declared},
        "destinations": [{"name": "archive", "type": "filesystem", "path": str(workdir / f"dst-{name}")}],
        "logging": {"level": "warning", "file": None},
    }
    path = workdir / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_ome_fileset(session: Path) -> None:
    names = [f"plane_{index:02d}.ome.tif" for index in range(20)]
    ids = [f"urn:uuid:{uuid.uuid4()}" for _ in names]
    tiff_data = "".join(
        f'<TiffData FirstZ="{index}" IFD="0" PlaneCount="1"><UUID FileName="{name}">{ids[index]}</UUID></TiffData>'
        for index, name in enumerate(names)
    )
    plane = numpy.zeros((512, 512), numpy.uint16)
    for index, name in enumerate(names):
        ome = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{ids[index]}">'
            '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="512" SizeY="512"'
            f' SizeZ="20" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tiff_data}'
            "</Pixels></Image></OME>"
        )
        tifffile.imwrite(session / name, plane, description=ome, metadata=None)


def write_dicom_series(session: Path) -> None:
    source = pydicom.dcmread(DATA / "dicom/single/CT_small.dcm")
    series = pydicom.uid.generate_uid()
    for index in range(50):
        source.SeriesInstanceUID = series
        source.SOPInstanceUID = pydicom.uid.generate_uid()
        source.InstanceNumber = index + 1
        source.AcquisitionNumber = 1
        source.ImagesInAcquisition = 50
        source.save_as(session / f"slice{index:03d}.dcm")


def write_micromanager(session: Path) -> None:
    name = "181003_multi_pos_time_course_1_MMStack.ome.tif"  # its OME-XML names itself: keep the name
    shutil.copyfile(DATA / "tiff/micromanager" / name, session / name)


ACQUISITIONS: dict[str, Callable[[Path], None]] = {
    "ome-fileset (20 files)": write_ome_fileset,
    "dicom-series (50 instances)": write_dicom_series,
    "micromanager (1 file, 20 images)": write_micromanager,
}


def latency(workdir: Path, name: str, write: Callable[[Path], None], *, declared: bool, idle: float) -> float:
    for prefix in ("state", "dst", "src"):
        shutil.rmtree(workdir / f"{prefix}-{name}", ignore_errors=True)
    (workdir / f"dst-{name}").mkdir()
    (workdir / f"src-{name}").mkdir()
    config = _config(workdir, name, declared=declared, idle=idle)
    process = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)], cwd=ROOT)
    try:
        time.sleep(3)  # the daemon's start-up (not measured)
        session = workdir / f"src-{name}" / "bench" / "run1"
        staging = workdir / f"staging-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        write(staging)
        session.mkdir(parents=True)
        for path in sorted(staging.iterdir()):  # written into the watched folder one by one
            shutil.copyfile(path, session / path.name)
        last_byte = time.monotonic()
        marker = workdir / f"dst-{name}" / "BENCH-01" / "bench" / "run1" / "tagmanifest-sha256.txt"
        while not marker.exists():
            if process.poll() is not None:
                raise SystemExit(f"the agent stopped (exit {process.returncode})")
            time.sleep(0.02)
        return time.monotonic() - last_byte
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-idle", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="harvest-latency-", dir=arguments.workdir))
    rows = []
    try:
        for label, write in ACQUISITIONS.items():
            agent, baseline = [], []
            for _ in range(arguments.rounds):
                agent.append(latency(workdir, "declared", write, declared=True, idle=IDLE))
                baseline.append(latency(workdir, "idle", write, declared=False, idle=arguments.baseline_idle))
            rows.append((label, statistics.median(agent), max(agent), statistics.median(baseline)))
            print(f"{label}: declared {agent}, idle-only {baseline}", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"| acquisition | declared close: median (max) | idle-only, idle {arguments.baseline_idle:.0f} s | goal "
          f"<= {GOAL:.0f} s |")  # fmt: skip
    print("|---|---|---|---|")
    for label, median, worst, idle_only in rows:
        verdict = "met" if worst <= GOAL else "NOT met"
        print(f"| {label} | {median:.2f} s ({worst:.2f} s) | {idle_only:.2f} s | {verdict} |")


if __name__ == "__main__":
    main()

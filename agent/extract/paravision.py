"""Bruker ParaVision scan folders: JCAMP-DX parameter files (``acqp``, ``method``,
``pdata/N/visu_pars``) read as text, written here.

The one reader (brkraw) is GPL, and JCAMP-DX is a documented text format
(``##$NAME=value``; arrays as ``( n )`` followed by values; strings in ``<>``).
The scan folder is one acquisition: its ``acqp`` is the unit's anchor and the folder's
other files (``fid``, ``2dseq``, ...) are members. Parameters are read from an
allow-list: never ``OWNER``, ``ACQ_operator``, ``ACQ_institution``, ``VisuSubject*``,
``VisuStudyId`` or the ``$$`` comment lines, which carry names and paths.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.extract.model import Dimensions, FileMetadata, InstrumentInfo, MrInfo, PixelSize
from agent.extract.values import integer, iso_date, number, positive, scaled, text

MAX_PARAMETER_BYTES = 4 << 20
PROTON_MHZ_PER_TESLA = 42.577478518
_ENTRY = re.compile(r"^##\$?([A-Za-z0-9_]+)=(.*)$")
_ALLOWED = frozenset({
    "ORIGIN", "BF1", "ACQ_method", "ACQ_protocol_name", "ACQ_scan_name", "ACQ_echo_time", "ACQ_repetition_time",
    "ACQ_inversion_time", "ACQ_flip_angle", "ACQ_fov", "ACQ_size", "ACQ_slice_thick", "ACQ_abs_time", "ACQ_time",
    "ACQ_station", "ACQ_sw_version", "NSLICES", "NI", "NA", "NR", "Method", "PVM_EchoTime", "PVM_RepetitionTime",
    "PVM_InversionTime", "PVM_Fov", "PVM_Matrix", "PVM_SliceThick", "PVM_SPackArrNSlices", "PVM_NAverages",
    "PVM_NRepetitions", "PVM_SpatResol", "VisuCoreSize", "VisuCoreExtent", "VisuCoreFrameCount", "VisuCoreWordType",
    "VisuAcqDate", "VisuAcqSequenceName", "VisuStation", "VisuCreatorVersion", "VisuMagneticFieldStrength",
    "VisuAcqEchoTime", "VisuAcqRepetitionTime", "VisuAcqFlipAngle", "VisuCoreFrameThickness",
})  # fmt: skip


def read_jcamp(path: Path) -> dict[str, str]:
    """The allow-listed parameters of one JCAMP-DX file, as raw text (arrays space-joined)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_PARAMETER_BYTES).decode("latin-1")
    values: dict[str, str] = {}
    current: str | None = None
    for line in data.splitlines():
        if line.startswith("$$"):
            current = None
            continue
        found = _ENTRY.match(line)
        if found:
            name, value = found.groups()
            current = name if name in _ALLOWED else None
            if current is not None:
                values[current] = "" if value.startswith("(") and value.rstrip().endswith(")") else value
            continue
        if current is not None and not line.startswith("##"):
            values[current] = (values[current] + " " + line).strip()
    return values


def _string(value: str | None) -> str | None:
    if value is None:
        return None
    return text(value[1:-1] if value.startswith("<") and value.endswith(">") else value)


def _numbers(value: str | None) -> list[float]:
    return [found for found in (number(part) for part in (value or "").split()) if found is not None]


def _first(value: str | None) -> float | None:
    found = _numbers(value)
    return found[0] if found else None


class ParaVisionExtractor:
    name = "paravision"

    def accepts(self, head: bytes, path: Path) -> bool:
        return path.name == "acqp" and head.startswith(b"##TITLE=") and b"JCAMP" in head

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        folder = path.parent
        acqp = read_jcamp(path)
        method = read_jcamp(folder / "method") if (folder / "method").is_file() else {}
        visu_files = sorted(folder.glob("pdata/*/visu_pars"))
        visu = read_jcamp(visu_files[0]) if visu_files else {}
        metadata.format = "paravision"
        metadata.media_type = "application/x-bruker-paravision"
        apply_paravision(metadata, acqp, method, visu)
        return metadata


def apply_paravision(metadata: FileMetadata, acqp: dict[str, str], method: dict[str, str],
                     visu: dict[str, str]) -> None:  # fmt: skip
    frequency = positive(_first(acqp.get("BF1")))
    mr = MrInfo(base_frequency_mhz=frequency)
    field = _first(visu.get("VisuMagneticFieldStrength"))
    mr.field_strength_t = positive(field) or (round(frequency / PROTON_MHZ_PER_TESLA, 2) if frequency else None)
    method_name = _string(acqp.get("ACQ_method")) or _string(method.get("Method"))
    mr.method = method_name.split(":", 1)[-1] if method_name else None
    mr.sequence = _string(acqp.get("ACQ_protocol_name")) or _string(visu.get("VisuAcqSequenceName"))
    mr.echo_time_ms = positive(_first(acqp.get("ACQ_echo_time"))) or positive(_first(method.get("PVM_EchoTime")))
    mr.repetition_time_ms = positive(_first(acqp.get("ACQ_repetition_time"))) or positive(
        _first(method.get("PVM_RepetitionTime"))
    )
    mr.inversion_time_ms = positive(_first(acqp.get("ACQ_inversion_time"))) or positive(
        _first(method.get("PVM_InversionTime"))
    )
    mr.flip_angle_deg = positive(_first(acqp.get("ACQ_flip_angle")))
    fov_mm = _numbers(method.get("PVM_Fov")) or [value * 10 for value in _numbers(acqp.get("ACQ_fov"))]
    mr.fov_mm = [float(f"{value:.6g}") for value in fov_mm]
    matrix = [int(value) for value in _numbers(method.get("PVM_Matrix")) or _numbers(visu.get("VisuCoreSize"))]
    mr.matrix = matrix
    mr.slice_thickness_mm = positive(_first(acqp.get("ACQ_slice_thick"))) or positive(
        _first(method.get("PVM_SliceThick"))
    )
    slices = _numbers(method.get("PVM_SPackArrNSlices"))
    mr.slices = integer(sum(slices)) if slices else integer(_first(acqp.get("NSLICES")))
    mr.averages = integer(_first(method.get("PVM_NAverages")) or _first(acqp.get("NA")))
    mr.repetitions = integer(_first(method.get("PVM_NRepetitions")) or _first(acqp.get("NR")))
    metadata.mr = mr
    station = _string(acqp.get("ACQ_station")) or _string(visu.get("VisuStation"))
    metadata.instrument = InstrumentInfo(manufacturer="Bruker BioSpin", model=station)
    version = _string(acqp.get("ACQ_sw_version")) or _string(visu.get("VisuCreatorVersion"))
    metadata.software = f"ParaVision {version.removeprefix('PV ')}" if version else "ParaVision"
    seconds = integer(_first(acqp.get("ACQ_abs_time")))
    metadata.acquisition_date = (
        iso_date(seconds) if seconds else iso_date(_string(visu.get("VisuAcqDate")))
    )  # "12:20:46 30 Nov 2011" (PV 5) or ISO
    if matrix:
        metadata.dimensions = Dimensions(x=matrix[0], y=matrix[1] if len(matrix) > 1 else None,
                                         z=matrix[2] if len(matrix) > 2 else mr.slices)  # fmt: skip
    if fov_mm and matrix:
        sizes = [scaled(fov / size, 1e3) for fov, size in zip(fov_mm, matrix, strict=False) if size]
        metadata.pixel_size_um = PixelSize(
            x=sizes[0] if sizes else None,
            y=sizes[1] if len(sizes) > 1 else None,
            z=sizes[2] if len(sizes) > 2 else scaled(mr.slice_thickness_mm, 1e3),
        )

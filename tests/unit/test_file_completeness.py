"""Structural completeness of one file (agent.extract.whole), on real samples and cut copies.

Every sample of a format that declares its extent must be ``whole`` intact, and
``truncated`` when cut anywhere inside what it declares: near the start, in the middle,
inside the last block and one byte short of its declared end. Formats that declare
nothing (a SerialEM mdoc, a Zarr chunk, an EMI) must say ``unknown``, never ``truncated``.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Literal

import pytest

from agent.extract import extract_metadata
from agent.extract.whole import check_file

DATA = Path(__file__).parents[1] / "data"
NOT_SAMPLES = {".md", ".txt"}
# Samples whose format declares nothing to check, by design.
DECLARES_NOTHING = {"tilt_series.mdoc", "64x64_TEM_images_acquire.emi", "vsi-ets-test-jpg2k.vsi", "EpuSession.dm",
                    "fid", "pulseprogram", "0"}  # fmt: skip


def _samples() -> list[Path]:
    found = []
    for path in sorted(DATA.rglob("*")):
        if not path.is_file() or path.suffix in NOT_SAMPLES or "LICENSE" in path.name or "COPYING" in path.name:
            continue
        if "malformed" in path.parts:
            continue
        found.append(path)
    return found


SAMPLES = _samples()


def _cut_copy(source: Path, length: int, target_root: Path) -> Path:
    """The first *length* bytes of *source*, beside copies of its folder's other files
    (a 2dseq's visu_pars, an .img's .hdr)."""
    target = target_root / source.relative_to(DATA)
    target.parent.mkdir(parents=True, exist_ok=True)
    for sibling in source.parent.iterdir():
        if sibling.is_file() and sibling != source and not (target.parent / sibling.name).exists():
            shutil.copyfile(sibling, target.parent / sibling.name)
    with source.open("rb") as handle:
        target.write_bytes(handle.read(length))
    return target


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: str(path.relative_to(DATA)))
def test_every_intact_sample_is_whole_or_declares_nothing(sample: Path) -> None:
    verdict = check_file(sample)
    if sample.name in DECLARES_NOTHING or "chunk" in sample.parent.name:
        assert verdict.state == "unknown", verdict
    else:
        assert verdict.state in ("whole", "unknown"), verdict


DECLARING = [sample for sample in SAMPLES if check_file(sample).state == "whole"]


@pytest.mark.parametrize("sample", DECLARING, ids=lambda path: str(path.relative_to(DATA)))
def test_every_cut_inside_what_a_sample_declares_is_truncated(sample: Path, tmp_path: Path) -> None:
    intact = check_file(sample)
    size = sample.stat().st_size
    # Where the declared structure ends: given by binary formats, else the last non-blank byte.
    end = intact.extent_bytes or len(sample.read_bytes().rstrip(b" \t\r\n\x00"))
    assert 0 < end <= size
    seeded = random.Random(sample.name)  # noqa: S311 - a reproducible cut, not a secret
    cuts = {
        "start": min(64, end - 1),
        "middle": end // 2,
        "inside the last block": end - max(1, min(1000, end // 20)),
        "one byte short": end - 1,
        "random": seeded.randrange(1, end),
    }
    for label, length in cuts.items():
        verdict = check_file(_cut_copy(sample, length, tmp_path / label.replace(" ", "-")))
        if verdict.state != "truncated" and length < 132 and sample.suffix.lower() in ("", ".dcm"):
            continue  # a DICOM cut inside its 128-byte preamble is no longer recognisable as DICOM
        assert verdict.state == "truncated", f"{label} (cut at {length} of {end}): {verdict}"


def test_a_declared_shortfall_is_described_in_numbers() -> None:
    verdict = check_file(DATA / "malformed/dicom/MR_truncated.dcm")
    assert verdict.state == "truncated"
    assert verdict.detail == "pixel data ends 62 bytes early"
    assert (verdict.declared, verdict.found, verdict.unit) == (9692, 9630, "bytes")
    chain = check_file(DATA / "malformed/tiff/z-series_truncated_200000B.ome.tif")
    assert chain.state == "truncated" and chain.found == 3


def test_a_truncated_file_warns_in_its_metadata() -> None:
    metadata = extract_metadata(DATA / "malformed/dicom/MR_truncated.dcm")
    assert metadata.completeness is not None and metadata.completeness.state == "truncated"
    assert "truncated: pixel data ends 62 bytes early" in metadata.warnings


def test_ome_tiff_with_fewer_ifds_than_its_planes_is_truncated(tmp_path: Path) -> None:
    import numpy
    import tifffile

    ome = (
        '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="8" SizeY="8"'
        ' SizeZ="240" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        "<TiffData/></Pixels></Image></OME>"
    )
    path = tmp_path / "stack.ome.tif"
    with tifffile.TiffWriter(path) as writer:
        for index in range(238):
            writer.write(numpy.zeros((8, 8), numpy.uint8), description=ome if index == 0 else None, metadata=None)
    verdict = check_file(path)
    assert verdict.state == "truncated"
    assert verdict.detail == "238 of 240 planes its OME-XML declares"


def test_formats_written_by_their_own_libraries(tmp_path: Path) -> None:
    import h5py
    import mrcfile
    import nibabel
    import numpy

    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle["data"] = numpy.arange(10000, dtype="float32")
    with mrcfile.new(tmp_path / "a.mrc") as handle:
        handle.set_data(numpy.zeros((4, 16, 16), numpy.float32))
    image = nibabel.Nifti1Image(numpy.zeros((8, 8, 4), numpy.int16), numpy.eye(4))  # type: ignore[no-untyped-call]
    nibabel.save(image, tmp_path / "a.nii")
    for name in ("a.h5", "a.mrc", "a.nii"):
        path = tmp_path / name
        assert check_file(path).state == "whole", name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 7])
        assert check_file(path).state == "truncated", name


def test_encapsulated_dicom_must_reach_its_sequence_delimiter(tmp_path: Path) -> None:
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    dataset = pydicom.dcmread(DATA / "dicom/single/CT_small.dcm")
    dataset.PixelData = encapsulate([b"\x00" * 5000, b"\x01" * 3001])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    dataset.NumberOfFrames = 2
    dataset.file_meta.TransferSyntaxUID = JPEG2000Lossless
    path = tmp_path / "enhanced.dcm"
    dataset.save_as(path, enforce_file_format=True)
    assert check_file(path).state == "whole"
    data = path.read_bytes()
    for cut in (len(data) - 8, len(data) - 100, len(data) - 5000):
        path.write_bytes(data[:cut])
        verdict = check_file(path)
        assert verdict.state == "truncated", (cut, verdict)
    assert "compressed pixel data" in (verdict.detail or "")


def test_nd2_needs_its_chunk_map(tmp_path: Path) -> None:
    """A synthetic ND2 layout (no licensed sample exists): chunks, then the chunk map, then
    the signature and the map's position in the last 40 bytes."""
    import struct

    def chunk(name: bytes, data: bytes) -> bytes:
        return struct.pack("<IIQ", 0x0ABECEDA, len(name), len(data)) + name + data

    first = chunk(b"ND2 FILE SIGNATURE CHUNK NAME01!", b"Ver3.0".ljust(64, b"\x00"))
    image = chunk(b"ImageDataSeq|0!", b"\x07" * 4096)
    entries = b"ImageDataSeq|0!" + struct.pack("<QQ", len(first), 4096) + b"ND2 CHUNK MAP SIGNATURE 0000001!"
    map_at = len(first) + len(image)
    body = first + image + chunk(b"ND2 FILEMAP SIGNATURE NAME 0001!", entries)
    whole_file = body + b"ND2 CHUNK MAP SIGNATURE 0000001!" + struct.pack("<Q", map_at)
    path = tmp_path / "run.nd2"
    path.write_bytes(whole_file)
    assert check_file(path).state == "whole"
    path.write_bytes(whole_file[:-1])
    assert check_file(path).state == "truncated"
    path.write_bytes(whole_file[: len(first) + 100])
    assert check_file(path).state == "truncated"


def test_a_name_alone_does_not_make_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.tif"
    path.write_bytes(b"this is a text file named like a TIFF\n" * 3)
    assert check_file(path).state == "unknown"
    (tmp_path / "short.tif").write_bytes(b"II*\x00")
    assert check_file(tmp_path / "short.tif").state == "truncated"
    (tmp_path / ".zattrs").write_text("{}")
    assert check_file(tmp_path / ".zattrs").state == "whole"


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("layout", ["one strip per plane", "many strips", "tiles"])
def test_multi_plane_tiffs_of_every_layout_are_checked_whole_and_cut(
    tmp_path: Path, byteorder: Literal["<", ">"], bigtiff: bool, layout: str
) -> None:
    """Planes after the first are checked in bulk; every layout and byte order must still
    be whole intact and truncated wherever a cut removes declared bytes."""
    import numpy
    import tifffile

    path = tmp_path / "stack.tif"
    options: dict[str, object] = {"rowsperstrip": 8} if layout == "many strips" else {}
    if layout == "tiles":
        options = {"tile": (16, 16)}
    data = numpy.arange(40 * 64 * 48, dtype=numpy.uint16).reshape(40, 64, 48)
    with tifffile.TiffWriter(path, bigtiff=bigtiff, byteorder=byteorder) as writer:
        for plane in data:
            writer.write(plane, contiguous=False, photometric="minisblack", **options)  # type: ignore[arg-type]
    intact = check_file(path)
    assert intact.state == "whole" and intact.declared == 40, intact
    end = intact.extent_bytes or 0
    original = path.read_bytes()
    seeded = random.Random(f"{byteorder}{bigtiff}{layout}")  # noqa: S311 - a reproducible cut, not a secret
    for length in (end - 1, end - 100, end // 2, *(seeded.randrange(8, end) for _ in range(5))):
        path.write_bytes(original[:length])
        assert check_file(path).state == "truncated", length


def _ifds_first_tiff(path: Path, planes: int, strips: int, order: str) -> int:
    """A classic TIFF whose IFDs all come first and whose pixel data follows (as some
    writers lay files out): only the strips' offsets and byte counts declare the end.
    Returns where the last strip ends."""
    import struct

    width, rows, strip_bytes = 16, 8 * strips, 16 * 8
    entries = 8
    ifd_size = 2 + entries * 12 + 4
    arrays_at = 8 + planes * ifd_size  # out-of-line strip tables (when several strips)
    data_at = arrays_at + (planes * strips * 8 if strips > 1 else 0)
    out = bytearray(struct.pack(order + "2sHI", b"II" if order == "<" else b"MM", 42, 8))
    tables = bytearray()
    for plane in range(planes):
        first_strip = data_at + plane * strips * strip_bytes
        if strips == 1:
            offsets_field, counts_field = (
                (1, struct.pack(order + "I", first_strip)),
                (1, struct.pack(order + "I", strip_bytes)),
            )
        else:
            table_at = arrays_at + plane * strips * 8
            tables += struct.pack(order + f"{strips}I", *(first_strip + index * strip_bytes for index in range(strips)))
            tables += struct.pack(order + f"{strips}I", *([strip_bytes] * strips))
            offsets_field = (strips, struct.pack(order + "I", table_at))
            counts_field = (strips, struct.pack(order + "I", table_at + strips * 4))
        fields = [
            (256, 3, 1, struct.pack(order + "HH", width, 0)), (257, 3, 1, struct.pack(order + "HH", rows, 0)),
            (258, 3, 1, struct.pack(order + "HH", 8, 0)), (259, 3, 1, struct.pack(order + "HH", 1, 0)),
            (262, 3, 1, struct.pack(order + "HH", 1, 0)), (273, 4, *offsets_field),
            (278, 3, 1, struct.pack(order + "HH", 8, 0)), (279, 4, *counts_field),
        ]  # fmt: skip
        if order == ">":  # a SHORT sits in the first two bytes of the field
            fields = [
                (tag, kind, count, value[:2] + b"\0\0" if kind == 3 else value) for tag, kind, count, value in fields
            ]
        out += struct.pack(order + "H", entries)
        for tag, kind, count, value in fields:
            out += struct.pack(order + "HHI", tag, kind, count) + value
        next_ifd = 8 + (plane + 1) * ifd_size if plane + 1 < planes else 0
        out += struct.pack(order + "I", next_ifd)
    out += tables
    out += bytes(planes * strips * strip_bytes)
    path.write_bytes(bytes(out))
    return len(out)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("strips", [1, 4])
def test_a_tiff_with_its_ifds_first_is_cut_where_only_strips_declare_the_end(
    tmp_path: Path, order: str, strips: int
) -> None:
    path = tmp_path / "ifds_first.tif"
    end = _ifds_first_tiff(path, 300, strips, order)
    intact = check_file(path)
    assert intact.state == "whole" and intact.declared == 300, intact
    original = path.read_bytes()
    for length in (end - 1, end - 100, end - 128 * strips * 150):  # inside the last strip; half the planes
        path.write_bytes(original[:length])
        verdict = check_file(path)
        assert verdict.state == "truncated", (length, verdict)
        assert verdict.detail is not None and verdict.detail.startswith("image data ends")

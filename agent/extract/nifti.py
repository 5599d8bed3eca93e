"""NIfTI-1 and NIfTI-2 (``.nii``, ``.nii.gz``), header read with nibabel (MIT); voxels never read."""

from __future__ import annotations

from pathlib import Path

from agent.extract.model import Dimensions, FileMetadata, NiftiInfo, PixelSize
from agent.extract.units import to_micrometres
from agent.extract.values import number, positive, text

GZIP_MAGIC = b"\x1f\x8b"
_TIME_TO_MS = {"sec": 1e3, "msec": 1.0, "usec": 1e-3}


class NiftiExtractor:
    name = "nifti"

    def accepts(self, head: bytes, path: Path) -> bool:
        name = path.name.lower()
        if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00", b"ni2\x00"):
            return True
        return name.endswith((".nii", ".nii.gz")) and (head.startswith(GZIP_MAGIC) or len(head) >= 348)

    def extract(self, path: Path, metadata: FileMetadata) -> FileMetadata:
        import nibabel

        image = nibabel.load(path)  # lazy: reads the header, maps no voxels until asked
        header = image.header
        if not isinstance(header, nibabel.Nifti1Header):  # Nifti2Header derives from it
            raise ValueError(f"not a NIfTI header ({type(header).__name__})")
        metadata.format = "nifti"
        metadata.media_type = "application/x-nifti"
        shape = [int(size) for size in header.get_data_shape()]
        zooms = [float(zoom) for zoom in header.get_zooms()]
        spatial_unit, time_unit = header.get_xyzt_units()
        metadata.dimensions = Dimensions(**dict(zip("xyzt", shape, strict=False)))
        metadata.pixel_size_um = PixelSize(
            **{axis: positive(to_micrometres(zoom, spatial_unit)) for axis, zoom in zip("xyz", zooms[:3], strict=False)}
        )
        repetition = zooms[3] * _TIME_TO_MS.get(time_unit, 0.0) if len(zooms) > 3 else None
        metadata.pixel_type = header.get_data_dtype().name
        metadata.nifti = NiftiInfo(
            version=2 if isinstance(header, nibabel.Nifti2Header) else 1,
            voxel_size=[number(zoom) or 0.0 for zoom in zooms[:3]],
            spatial_unit=text(spatial_unit),
            time_unit=text(time_unit),
            repetition_time_ms=positive(number(repetition)),
            description=text(bytes(header["descrip"])),
            qform_code=int(header["qform_code"]),
            sform_code=int(header["sform_code"]),
            data_type=metadata.pixel_type,
        )
        return metadata

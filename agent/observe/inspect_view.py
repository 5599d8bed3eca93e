"""Readable rendering of normalised file metadata for ``harvest inspect``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from agent.extract.model import FileMetadata


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}={_value(item)}" for key, item in value.items() if item is not None)
    if isinstance(value, list):
        return " ".join(_value(item) for item in value)
    return _value(value)


def render_metadata(console: Console, path: str, metadata: FileMetadata) -> None:
    table = Table(title=path, show_header=False, title_justify="left", expand=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    dims = metadata.dimensions
    size = metadata.pixel_size_um
    rows: list[tuple[str, Any]] = [
        ("format", metadata.format),
        ("media type", metadata.media_type),
        ("size", f"{metadata.size_bytes} bytes"),
        ("acquired", metadata.acquisition_date),
        ("software", metadata.software),
        ("dimensions (x y z c t)", " ".join(_value(v) for v in (dims.x, dims.y, dims.z, dims.c, dims.t))),
        ("pixel type", metadata.pixel_type),
        ("planes", metadata.plane_count),
        ("pixel size µm (x y z)", " ".join(_value(v) for v in (size.x, size.y, size.z))),
    ]
    instrument = metadata.instrument
    if any(instrument.model_dump().values()):
        rows.append(("instrument", " / ".join(_value(v) for v in instrument.model_dump().values())))
    for objective in metadata.objectives:
        rows.append(
            (
                "objective",
                f"{_value(objective.magnification)}x NA {_value(objective.numerical_aperture)}"
                f" {_value(objective.immersion)} {objective.model or ''}".strip(),
            )
        )
    for channel in metadata.channels:
        rows.append(
            ("channel", f"{_value(channel.name)} ex {_value(channel.excitation_nm)} em {_value(channel.emission_nm)}")
        )
    if metadata.fileset:
        rows.append(("fileset", ", ".join(metadata.fileset)))
    extra = {name: getattr(dims, name) for name in ("s", "m", "h", "p", "spectral") if getattr(dims, name)}
    if extra:
        rows.append(("more dimensions", " ".join(f"{name}={size}" for name, size in extra.items())))
    for image in metadata.images:
        sizes = image.dimensions.model_dump(exclude_none=True)
        rows.append(("image", f"{image.name or ''} {' '.join(f'{k}={v}' for k, v in sizes.items())}".strip()))
    sections = {
        "dicom": metadata.dicom,
        "electron": metadata.electron,
        "mr": metadata.mr,
        "nifti": metadata.nifti,
        "camera": metadata.camera,
        "plate": metadata.plate,
        "stage": metadata.stage,
        "unit": metadata.unit,
    }
    for section, model in sections.items():  # fmt: skip
        if model is None:
            continue
        for key, value in model.model_dump(exclude_none=True).items():
            if value not in ([], {}) and not (isinstance(value, dict) and not any(value.values())):
                rows.append((f"{section} {key}", _flat(value)))
    verdict = metadata.completeness
    if verdict is not None:
        counts = f" ({verdict.found} of {verdict.declared} {verdict.unit})" if verdict.declared is not None else ""
        rows.append(("completeness", f"{verdict.state}{counts}" + (f": {verdict.detail}" if verdict.detail else "")))
    for declaration in metadata.declares:
        rows.append(("declares", f"{declaration.kind}: {declaration.expected} {declaration.unit}"))
    for warning in metadata.warnings:
        rows.append(("warning", warning))
    for field, value in rows:
        table.add_row(field, _value(value))
    console.print(table)

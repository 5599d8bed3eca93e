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
    if metadata.dicom is not None:
        for key, value in metadata.dicom.model_dump().items():
            if value is not None:
                rows.append((f"dicom {key}", value))
    for warning in metadata.warnings:
        rows.append(("warning", warning))
    for field, value in rows:
        table.add_row(field, _value(value))
    console.print(table)

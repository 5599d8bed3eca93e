"""The dataset package: ``harvest.json`` (our versioned sidecar) inside a BagIt bag.

``harvest.json`` carries the instrument's identity, the dataset's fields and revision,
and every payload file's SHA-256 and size, plus the files that could not be delivered
and why, so that nothing is silently dropped. Its JSON Schema is in docs/schemas/.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent import __version__
from agent.config.models import Instrument
from agent.package.bagit import PayloadEntry, TagFile, build_bag
from agent.package.crate import RO_CRATE_METADATA, build_crate
from agent.package.jsontext import readable_json
from agent.package.names import display, encode_component, is_utf8

HARVEST_JSON_VERSION = 2
HARVEST_JSON = "harvest.json"
MAX_SUMMARY_CHANNELS = 1024  # distinct channel names listed in a dataset's summary


@dataclass(frozen=True)
class PackageFile:
    """One payload file as the package describes it."""

    entry: PayloadEntry
    source_rel_path: str
    mtime_ns: int
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class MissingFile:
    source_rel_path: str
    reason: str


@dataclass(frozen=True)
class DatasetPackage:
    bag_path: str
    revision: int
    tag_files: list[TagFile]


def bag_path_for(instrument_id: str, archive_key: str, root_name: str | None = None) -> str:
    """Where a dataset's bag lives, relative to a destination's root.

    ``<instrument id>/[<root name>/]<archive key>``: the root's name keeps datasets of
    several watched roots apart when their keys are equal. *archive_key* is the dataset
    key as the journal mapped it to archive names (``agent.package.names``).
    """
    parts = [encode_component(instrument_id)]
    if root_name:
        parts.append(encode_component(root_name))
    parts.append(archive_key)
    return "/".join(parts)


def _source_name(key: str, path: str) -> dict[str, str]:
    """The original name, printable; and, if it was not UTF-8, its exact bytes (hex)."""
    entry = {key: display(path)}
    if not is_utf8(path):
        entry[f"{key}_bytes_hex"] = path.encode("utf-8", "surrogateescape").hex()
    return entry


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def build_package(
    instrument: Instrument,
    *,
    dataset_key: str,
    archive_key: str,
    dataset_fields: dict[str, str],
    revision: int,
    opened_at: float,
    closed_at: float | None,
    close_reason: str | None,
    files: Sequence[PackageFile],
    missing: Sequence[MissingFile],
    now: float,
    warnings: Sequence[str] = (),
    root_name: str | None = None,
    completeness: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
) -> DatasetPackage:
    payload = [item.entry for item in files]
    ordered = sorted(files, key=lambda item: item.entry.path_in_dataset)
    summary = summarize(ordered)
    file_entries = [
        {
            "path": f"data/{item.entry.path_in_dataset}",
            **_source_name("source_path", item.source_rel_path),
            "size_bytes": item.entry.size_bytes,
            "sha256": item.entry.sha256,
            "modified_at": _iso(item.mtime_ns / 1e9),
            "media_type": (item.metadata or {}).get("media_type", "application/octet-stream"),
            "metadata": item.metadata,
        }
        for item in ordered
    ]
    truncated = [
        {"path": entry["path"], "detail": ((entry["metadata"] or {}).get("completeness") or {}).get("detail")}
        for entry in file_entries
        if ((entry["metadata"] or {}).get("completeness") or {}).get("state") == "truncated"
    ]
    sidecar = {
        "harvest_json_version": HARVEST_JSON_VERSION,
        "agent": {"name": "harvest-agent", "version": __version__},
        "instrument": instrument.model_dump(mode="json", exclude_none=True),
        "dataset": {
            "key": display(dataset_key),
            **({} if archive_key == dataset_key else {"archive_key": archive_key}),
            "fields": {name: display(value) for name, value in dataset_fields.items()},
            "revision": revision,
            "opened_at": _iso(opened_at),
            "closed_at": _iso(closed_at),
            "close_reason": close_reason,
            "committed_at": _iso(now),
            "complete": not missing and not truncated,
        },
        "completeness": {**(completeness or {"decided_by": None, "declared": []}), "truncated": truncated},
        # How the destination holding this bag checked each file's bytes on arrival.
        "verification": verification or {"destination": None, "methods": {}},
        "summary": summary,
        "warnings": list(warnings),
        "files": file_entries,
        "units": units_of(ordered),
        "missing": [
            {**_source_name("source_path", item.source_rel_path), "reason": display(item.reason)} for item in missing
        ],
    }
    labels = [
        ("Source-Organization", instrument.facility or ""),
        ("External-Identifier", display(dataset_key)),
        ("Bagging-Date", datetime.fromtimestamp(now, UTC).date().isoformat()),
        ("Bag-Software-Agent", f"harvest-agent {__version__}"),
        ("Instrument-Id", instrument.id),
        ("Instrument-Name", instrument.name or ""),
        ("Contact-Name", display(dataset_fields.get("operator", ""))),
        ("Harvest-Revision", str(revision)),
        ("Harvest-Missing-Files", str(len(missing)) if missing else ""),
    ]
    sidecar_bytes = (readable_json(sidecar, "files", indent=2) + "\n").encode("utf-8")
    crate = build_crate(
        instrument,
        dataset_key=display(dataset_key),
        dataset_fields={name: display(value) for name, value in dataset_fields.items()},
        revision=revision,
        committed_at=_iso(now) or "",
        date_range=(summary["acquisition_date_range"]["start"], summary["acquisition_date_range"]["end"]),
        files=file_entries,
    )
    tag_files = build_bag(labels, payload, [TagFile(HARVEST_JSON, sidecar_bytes), TagFile(RO_CRATE_METADATA, crate)])
    return DatasetPackage(bag_path_for(instrument.id, archive_key, root_name), revision, tag_files)


def units_of(files: Sequence[PackageFile]) -> list[dict[str, Any]]:
    """Multi-file units, each with its anchor and members (paths in the bag)."""
    units: dict[str, dict[str, Any]] = {}
    formats: dict[str, str | None] = {}
    for item in files:
        metadata = item.metadata or {}
        unit = metadata.get("unit")
        if not isinstance(unit, dict) or not isinstance(unit.get("path"), str):
            continue
        # the unit's path is relative to the member's folder (see agent.extract.bundles)
        anchor = posixpath.normpath(posixpath.join(posixpath.dirname(item.entry.path_in_dataset), unit["path"]))
        entry = units.setdefault(anchor, {"kind": str(unit.get("kind")), "anchor": f"data/{anchor}", "members": []})
        if unit.get("role") == "anchor":
            formats[anchor] = metadata.get("format")
        else:
            entry["members"].append(f"data/{item.entry.path_in_dataset}")
    return [
        {**entry, "format": formats.get(anchor), "member_count": len(entry["members"])}
        for anchor, entry in sorted(units.items())
    ]


def summarize(files: Sequence[PackageFile]) -> dict[str, Any]:
    """The dataset at a glance: formats, modalities, instruments, date range, channels."""
    formats: set[str] = set()
    modalities: set[str] = set()
    channels: dict[str, None] = {}  # ordered and linear: a list's `in` made 20,000 channels take seconds
    instruments: list[dict[str, Any]] = []
    dates: list[str] = []
    for item in files:
        metadata = item.metadata or {}
        formats.add(metadata.get("format") or "generic")
        dicom = metadata.get("dicom") or {}
        if dicom.get("modality"):
            modalities.add(dicom["modality"])
        for channel in metadata.get("channels") or []:
            name = channel.get("name")
            if name and len(channels) < MAX_SUMMARY_CHANNELS:
                channels.setdefault(name, None)
        instrument = metadata.get("instrument") or {}
        if any(instrument.values()) and len(instruments) < 64 and instrument not in instruments:
            instruments.append(instrument)
        if metadata.get("acquisition_date"):
            dates.append(metadata["acquisition_date"])
    return {
        "file_count": len(files),
        "size_bytes": sum(item.entry.size_bytes for item in files),
        "formats": sorted(formats),
        "modalities": sorted(modalities),
        "instruments": instruments,
        "channel_names": list(channels),
        "acquisition_date_range": {"start": min(dates, default=None), "end": max(dates, default=None)},
    }

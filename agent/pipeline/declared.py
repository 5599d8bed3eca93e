"""Dataset completeness from what its files declare (docs/architecture.md, "three layers").

A dataset is complete by declaration when every one of its files is covered by a
declaration and every declaration is satisfied:

* an OME fileset: every file its OME-XML names (TiffData ``UUID FileName``, a companion's
  BinaryOnly files) is present;
* a DICOM acquisition: as many instances as ``ImagesInAcquisition`` (or, for PET/NM,
  slices x time slices) declare; an enhanced multi-frame object by itself;
* a Micro-Manager run: Frames x Slices x Channels x Positions images across its files;
* a multi-file unit (OME-Zarr store, ParaVision scan): every file its metadata declares
  (``agent.extract.unit_extent``); every file inside the unit is covered by it;

and no file is truncated. A file no declaration covers (a log, a note, a generic file)
means the dataset does not declare its extent: the idle timer decides, as before.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ExpectedFiles = Callable[[str, Path], set[str] | None]
_DESCRIBED = {
    "ome-fileset": "OME fileset", "dicom-acquisition": "DICOM acquisition", "micromanager": "Micro-Manager run",
    "ome-zarr": "OME-Zarr store", "paravision-scan": "ParaVision scan",
}  # fmt: skip


@dataclass(frozen=True)
class DeclaredFile:
    path: str  # in the dataset
    source: Path
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Count:
    kind: str
    declared: int
    found: int
    unit: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "declared": self.declared, "found": self.found, "unit": self.unit}


@dataclass(frozen=True)
class Declared:
    counts: list[Count] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)  # files no declaration covers
    truncated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # fileset members named but not in the dataset

    @property
    def complete(self) -> bool:
        """Everything declared is present and whole, and every file is declared."""
        satisfied = all(count.found >= count.declared for count in self.counts)
        return bool(self.counts) and satisfied and not self.undeclared and not self.truncated

    def waiting(self) -> str | None:
        """Why it is not complete by declaration, for status ("waiting for 2 of 240 images")."""
        if self.truncated:
            return f"waiting for {len(self.truncated)} incomplete file(s) to be whole: {self.truncated[0]}"
        for count in self.counts:
            if count.found < count.declared:
                missing = count.declared - count.found
                what = _DESCRIBED.get(count.kind, count.kind)
                return f"waiting for {missing} of {count.declared} {count.unit} ({what})"
        return None


def evaluate(files: Iterable[DeclaredFile], expected_files: ExpectedFiles) -> Declared:
    files = list(files)
    present = {item.path for item in files}
    covered: set[str] = set()
    counts: list[Count] = []
    truncated = sorted(item.path for item in files if _state(item.metadata) == "truncated")
    filesets, missing = _filesets(files, present, covered)
    counts += filesets
    counts += _acquisitions(files, covered)
    counts += _units(files, present, covered, expected_files)
    undeclared = sorted(present - covered)
    return Declared(counts, undeclared, truncated, missing)


def _state(metadata: dict[str, Any] | None) -> str | None:
    completeness = (metadata or {}).get("completeness")
    return completeness.get("state") if isinstance(completeness, dict) else None


def fileset_wanted(path: str, metadata: dict[str, Any] | None) -> frozenset[str]:
    """The files (paths in the dataset) that a file's OME metadata names as its fileset."""
    folder = posixpath.dirname(path)
    return frozenset(posixpath.normpath(posixpath.join(folder, name)) for name in (metadata or {}).get("fileset") or [])


def _filesets(files: list[DeclaredFile], present: set[str], covered: set[str]) -> tuple[list[Count], list[str]]:
    """One count per OME fileset, and the members named but missing."""
    sets: dict[frozenset[str], None] = {}
    for item in files:
        wanted = fileset_wanted(item.path, item.metadata)
        if not wanted:
            continue
        covered.add(item.path)
        covered.update(wanted & present)
        sets.setdefault(wanted, None)
    # A BinaryOnly member names itself and its metadata file; the full set names everyone.
    largest = [wanted for wanted in sets if not any(wanted < other for other in sets)]
    missing = sorted(frozenset().union(*sets) - present)
    return [Count("ome-fileset", len(wanted), len(wanted & present), "files") for wanted in largest], missing


def _acquisitions(files: list[DeclaredFile], covered: set[str]) -> list[Count]:
    groups: dict[tuple[str, str], list[int]] = {}  # -> [declared, found]
    units: dict[tuple[str, str], str] = {}
    for item in files:
        for declaration in (item.metadata or {}).get("declares") or []:
            if declaration.get("kind") not in ("dicom-acquisition", "micromanager"):
                continue
            key = (str(declaration["kind"]), str(declaration["group"]))
            entry = groups.setdefault(key, [0, 0])
            entry[0] = max(entry[0], int(declaration["expected"]))
            entry[1] += int(declaration.get("contributes", 1))
            units[key] = str(declaration.get("unit", "files"))
            covered.add(item.path)
    return [Count(kind, declared, found, units[(kind, group)]) for (kind, group), (declared, found) in groups.items()]


def _units(
    files: list[DeclaredFile], present: set[str], covered: set[str], expected_files: ExpectedFiles
) -> list[Count]:
    folders: dict[tuple[str, str], Path] = {}  # (kind, folder in dataset) -> folder at the source
    for item in files:
        unit = (item.metadata or {}).get("unit")
        if not isinstance(unit, dict) or unit.get("kind") not in ("ome-zarr", "paravision-scan"):
            continue
        anchor = posixpath.normpath(posixpath.join(posixpath.dirname(item.path), str(unit.get("path"))))
        source_anchor = Path(posixpath.normpath((item.source.parent / str(unit.get("path"))).as_posix()))
        folders.setdefault((str(unit["kind"]), posixpath.dirname(anchor)), source_anchor.parent)
    counts = []
    for (kind, folder), source in folders.items():
        prefix = f"{folder}/" if folder else ""
        inside = {path[len(prefix) :] for path in present if path.startswith(prefix)}
        expected = expected_files(kind, source)
        if expected is None:
            counts.append(Count(kind, 1, 0, "declaration (not written yet)"))
            continue
        covered.update(prefix + path for path in inside)
        counts.append(Count(kind, len(expected), len(expected & inside), "files"))
    return counts

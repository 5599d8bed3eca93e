"""Multi-file units: files that together are one acquisition, extracted once.

* an OME-Zarr store (a ``*.zarr`` folder, or the top zarr group): anchor ``.zattrs`` or
  ``zarr.json``; chunks and array metadata are members, never extracted;
* a Bruker ParaVision scan folder (holds ``acqp``): anchor ``acqp``; ``fid``, ``2dseq``,
  ``pdata/...`` are members, never extracted;
* a cellSens VSI and its ``_<name>_/stackN/*.ets``: anchor the VSI, ETS files members;
* a TIA EMI and its ``<name>_N.ser`` series: anchor the EMI; each SER is still read;
* an EPU ``<name>.xml`` and its movie and previews (``<name>.mrc/.tiff/.eer/.jpg``,
  ``<name>_Fractions.*``): anchor the XML; the movies are still read;
* a SerialEM ``<stack>.mdoc`` and its ``<stack>``: anchor the mdoc; the stack is still read.

Membership is decided from names and a few ``stat`` calls on the file's own folders.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.extract.model import UnitInfo

MAX_ZARR_DEPTH = 16
MAX_PARAVISION_DEPTH = 3
_EPU_DATA = re.compile(r"^(FoilHole_\d+_Data_\d+_\d+_\d{8}_\d{6})", re.IGNORECASE)
_SER = re.compile(r"^(.+)_\d+\.ser$", re.IGNORECASE)


@dataclass(frozen=True)
class Membership:
    kind: str
    anchor: Path
    role: Literal["anchor", "member"]
    read_member: bool = False  # a member that is an image in its own right is still read

    def info(self, path: Path) -> UnitInfo:
        relative = os.path.relpath(self.anchor, path.parent).replace(os.sep, "/")
        return UnitInfo(kind=self.kind, path=relative, role=self.role)


_KNOWN_FILES: dict[str, None] = {}  # files seen to exist; a missing one may still arrive, so it is asked again
_KNOWN_LIMIT = 4096


def _is_file(path: str) -> bool:
    if path in _KNOWN_FILES:
        return True
    if not Path(path).is_file():
        return False
    if len(_KNOWN_FILES) >= _KNOWN_LIMIT:
        _KNOWN_FILES.pop(next(iter(_KNOWN_FILES)))
    _KNOWN_FILES[path] = None
    return True


def _zarr_anchor(folder: Path) -> Path | None:
    for name in ("zarr.json", ".zattrs"):
        if _is_file(str(folder / name)):
            return folder / name
    return None


def unit_folder(path: Path) -> Path | None:
    """The folder unit (OME-Zarr store or ParaVision scan) that *path* lies in, if any."""
    parents = list(path.parents)[:MAX_ZARR_DEPTH]
    for parent in reversed(parents):  # the outermost .zarr folder is the store, even before its
        if parent.name.lower().endswith(".zarr"):  # metadata file is written (writers often write it last)
            return parent
    for parent in parents[:MAX_PARAVISION_DEPTH]:
        if _is_file(str(parent / "acqp")):
            return parent
    return None


def membership(path: Path) -> Membership | None:
    folder = unit_folder(path)
    if folder is not None:
        if folder.name.lower().endswith(".zarr"):
            anchor = _zarr_anchor(folder) or folder / ".zattrs"
            return Membership("ome-zarr", anchor, "anchor" if path == anchor else "member")
        anchor = folder / "acqp"
        return Membership("paravision-scan", anchor, "anchor" if path == anchor else "member")
    return _same_folder_unit(path)


def _same_folder_unit(path: Path) -> Membership | None:
    name, suffix = path.name, path.suffix.lower()
    if suffix == ".vsi":
        return Membership("vsi", path, "anchor") if (path.parent / f"_{path.stem}_").is_dir() else None
    if suffix == ".ets" and path.parent.parent.name.startswith("_") and path.parent.parent.name.endswith("_"):
        vsi = path.parent.parent.with_name(path.parent.parent.name[1:-1] + ".vsi")
        return Membership("vsi", vsi, "member") if _is_file(str(vsi)) else None
    if suffix == ".emi":
        return Membership("tia", path, "anchor")
    if suffix == ".ser" and (found := _SER.match(name)):
        emi = path.with_name(found.group(1) + ".emi")
        return Membership("tia", emi, "member", read_member=True) if emi.is_file() else None
    if suffix == ".mdoc":
        return Membership("serialem", path, "anchor")
    if _is_file(str(path) + ".mdoc"):
        return Membership("serialem", Path(str(path) + ".mdoc"), "member", read_member=True)
    epu = _EPU_DATA.match(name)
    if epu:
        xml = path.with_name(epu.group(1) + ".xml")
        if path == xml:
            return Membership("epu-movie", path, "anchor")
        if xml.is_file():
            return Membership("epu-movie", xml, "member", read_member=True)
    return None


def unit_folder_index(root: Path, rel_path: str) -> int | None:
    """Index of the first folder of *rel_path* that is a folder unit, for dataset placement."""
    folder = unit_folder(root / rel_path)
    if folder is None:
        return None
    try:
        depth = len(folder.relative_to(root).parts)
    except ValueError:
        return None
    return depth - 1 if depth > 0 else None

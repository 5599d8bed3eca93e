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

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
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
_ONE_INSTANT = threading.local()  # .absent: names found missing in this thread's batch -> when
#: The longest a batch counts as one instant (a batch of large files takes minutes to hash).
INSTANT_SECONDS = 0.5


@contextlib.contextmanager
def one_instant() -> Iterator[None]:
    """Files handled together (a batch) are looked at as of one instant: a name found missing
    is not asked again within the block. A batch of files from one folder asks the same few
    names (``acqp`` in each parent); a name that appears during the batch is the same race
    as a file that arrives just after it, which no order of arrival rules out. An answer is
    kept at most ``INSTANT_SECONDS``; outside such a block every question goes to the
    filesystem."""
    _ONE_INSTANT.absent = {}
    try:
        yield
    finally:
        _ONE_INSTANT.absent = None


def _is_file(path: str) -> bool:
    if path in _KNOWN_FILES:
        return True
    absent: dict[str, float] | None = getattr(_ONE_INSTANT, "absent", None)
    if absent is not None:
        now = time.monotonic()
        if now - absent.get(path, -INSTANT_SECONDS) < INSTANT_SECONDS:
            return False
    if not os.path.isfile(path):
        if absent is not None:
            absent[path] = now
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


def _parents(path: str, limit: int) -> list[str]:
    """Up to *limit* folders above *path*, nearest first (as ``Path.parents``, on strings)."""
    parents: list[str] = []
    folder = os.path.dirname(path)
    while len(parents) < limit:
        parents.append(folder)
        above = os.path.dirname(folder)
        if above == folder:
            break
        folder = above
    return parents


def _unit_folder(path: str) -> str | None:
    if ".zarr" in path.lower():
        # The outermost .zarr folder is the store, even before its metadata file is written
        # (writers often write it last).
        for parent in reversed(_parents(path, MAX_ZARR_DEPTH)):
            if os.path.basename(parent).lower().endswith(".zarr"):
                return parent
    for parent in _parents(path, MAX_PARAVISION_DEPTH):
        if _is_file(os.path.join(parent, "acqp")):
            return parent
    return None


def unit_folder(path: Path) -> Path | None:
    """The folder unit (OME-Zarr store or ParaVision scan) that *path* lies in, if any."""
    folder = _unit_folder(str(path))
    return None if folder is None else Path(folder)


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
    root_text = str(root)
    folder = _unit_folder(os.path.join(root_text, *rel_path.split("/")))
    if folder is None:
        return None
    try:
        relative = os.path.relpath(folder, root_text)
    except ValueError:  # another drive (Windows)
        return None
    if relative == os.curdir or relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return len(relative.split(os.sep)) - 1

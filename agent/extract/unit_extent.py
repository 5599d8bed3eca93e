"""What a multi-file unit declares it will hold, read from its own metadata files.

- OME-Zarr (v2 ``.zattrs``/``.zarray``, v3 ``zarr.json``): a plate names its wells, a well
  its images, an image's multiscales its arrays, and each array's shape and chunk shape
  the chunk files it has. A writer that skips all-fill chunks (zarr's
  ``write_empty_chunks=False``) leaves keys missing on purpose: such a store never looks
  complete by declaration, and its dataset closes on the idle timer as before.
- ParaVision scan: once reconstructed (``pdata/N``), each processed data set declares its
  ``visu_pars`` and ``2dseq`` (whose size ``agent.extract.whole`` checks); with ``acqp`` and
  ``method``.

Returns paths relative to the unit's folder, or None when the unit declares nothing (yet).
"""

from __future__ import annotations

import itertools
import json
import math
import posixpath
from pathlib import Path
from typing import Any

MAX_CHUNKS = 1_000_000
MAX_DEPTH = 8


class _TooMany(Exception):
    pass


def expected_files(kind: str, folder: Path) -> set[str] | None:
    try:
        if kind == "ome-zarr":
            return _zarr_group(folder, "", 0)
        if kind == "paravision-scan":
            return _paravision(folder)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, _TooMany):
        return None  # unreadable or enormous: nothing declared, the idle timer decides
    return None


def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else None


def _zarr_group(store: Path, rel: str, depth: int) -> set[str] | None:
    if depth > MAX_DEPTH:
        raise _TooMany
    folder = store / rel if rel else store
    v3 = _load(folder / "zarr.json")
    if v3 is not None:
        expected, attributes = {_join(rel, "zarr.json")}, v3.get("attributes") or {}
    else:
        attributes = _load(folder / ".zattrs")
        if attributes is None:
            return None
        expected = {_join(rel, ".zattrs"), _join(rel, ".zgroup")}
    ome = attributes.get("ome", attributes)
    children: list[str] = []
    if isinstance(ome.get("plate"), dict):
        children += [str(well["path"]) for well in ome["plate"].get("wells") or []]
    if isinstance(ome.get("well"), dict):
        children += [str(image["path"]) for image in ome["well"].get("images") or []]
    multiscales = ome.get("multiscales") or []
    arrays = [str(dataset["path"]) for multiscale in multiscales for dataset in multiscale.get("datasets") or []]
    if not children and not arrays:
        return None  # a group that declares nothing
    for child in children:
        declared = _zarr_group(store, _join(rel, child), depth + 1)
        if declared is None:
            return None  # a named well or image not written yet: not declared complete
        expected |= declared
    for array in arrays:
        declared = _zarr_array(store, _join(rel, array))
        if declared is None:
            return None
        expected |= declared
    if len(expected) > MAX_CHUNKS:
        raise _TooMany
    return expected


def _zarr_array(store: Path, rel: str) -> set[str] | None:
    folder = store / rel
    v3 = _load(folder / "zarr.json")
    if v3 is not None:
        shape = v3["shape"]
        chunks = v3["chunk_grid"]["configuration"]["chunk_shape"]
        encoding = v3.get("chunk_key_encoding") or {"name": "default"}
        separator = (encoding.get("configuration") or {}).get("separator")
        if encoding.get("name") == "v2":
            prefix, separator = "", separator or "."
        else:
            prefix, separator = "c", separator or "/"
        meta = "zarr.json"
    else:
        v2 = _load(folder / ".zarray")
        if v2 is None:
            return None
        shape, chunks = v2["shape"], v2["chunks"]
        prefix, separator, meta = "", v2.get("dimension_separator") or ".", ".zarray"
    grid = [math.ceil(int(size) / int(chunk)) if int(chunk) else 0 for size, chunk in zip(shape, chunks, strict=True)]
    if math.prod(grid) > MAX_CHUNKS:
        raise _TooMany
    keys = {
        separator.join(([prefix] if prefix else []) + [str(index) for index in position])
        for position in itertools.product(*(range(count) for count in grid))
    }
    return {_join(rel, meta)} | {_join(rel, *key.split("/")) for key in keys}


def _paravision(scan: Path) -> set[str] | None:
    pdata = scan / "pdata"
    if not pdata.is_dir():
        return None
    processed = sorted(entry.name for entry in pdata.iterdir() if entry.is_dir())
    if not processed:
        return None
    expected = {"acqp", "method"}
    for name in processed:
        expected |= {f"pdata/{name}/visu_pars", f"pdata/{name}/2dseq"}
    return expected


def _join(*parts: str) -> str:
    return posixpath.normpath(posixpath.join(*[part for part in parts if part])) if any(parts) else ""

"""Hostile names end to end: no two sources share a bag or a file, and every bag validates.

Each case is a real ``harvest scan`` (a subprocess) into a filesystem archive; every bag
it wrote is validated with bagit-python, and every source file must be found, with its
own bytes, in exactly one bag, under the name ``harvest.json`` records for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import bagit
import pytest

from tests.helpers import harvest_command, subprocess_env, write_config
from tests.integration.conftest import run_scan

# Folder names (dataset keys) whose naive archive forms collide, and file names likewise.
SESSION_PAIRS = ["10:30", "10_30", "run1", "run1.", "run1 ", "CON", "CON.", "trail.", "trail ", "Case", "case"]
FILE_NAMES = [
    "image.raw", "my%20image.tif", "%41%42.txt", "%25.txt", "ends in space ", "a:b", "a_b", "nul.txt", "AUX",
    "Image.tif", "image.tif", "q?.txt", "tab\tname", "tilde~7E.txt", "dots..", "é.txt", "e\u0301.txt",
]  # fmt: skip
LATIN1 = [b"r\xe9sultat.txt", b"caf\xe9"]


def _bags(archive: Path) -> list[Path]:
    return sorted(path.parent for path in archive.rglob("bagit.txt"))


def _payload_by_source(archive: Path, instrument: Path) -> dict[bytes, tuple[Path, str]]:
    """Source path (bytes) -> (bag, archive path) for every payload file of every valid bag."""
    found: dict[bytes, tuple[Path, str]] = {}
    for bag in _bags(archive):
        bagit.Bag(str(bag)).validate()  # raises on any problem
        sidecar = json.loads((bag / "harvest.json").read_text(encoding="utf-8"))
        assert sidecar["dataset"]["complete"] is True, sidecar["missing"]
        for entry in sidecar["files"]:
            raw = bytes.fromhex(entry["source_path_bytes_hex"]) if "source_path_bytes_hex" in entry else None
            source = raw if raw is not None else entry["source_path"].encode("utf-8")
            assert source not in found, f"{source!r} archived twice"
            found[source] = (bag, entry["path"])
            content = (bag / entry["path"]).read_bytes()
            expected = (instrument / os.fsdecode(source)).read_bytes()
            assert content == expected, source
            assert hashlib.sha256(content).hexdigest() == entry["sha256"]
    return found


def _write_corpus(instrument: Path) -> set[bytes]:
    sources: set[bytes] = set()
    for session in SESSION_PAIRS:
        for name in FILE_NAMES:
            path = instrument / "alice" / session / name
            path.parent.mkdir(parents=True, exist_ok=True)
            # Every file has different bytes: a merge or an overwrite cannot go unseen.
            path.write_bytes(f"{session!r}/{name!r}\n".encode() * 3)
            sources.add(os.fsencode(path.relative_to(instrument)))
    for raw in LATIN1:
        folder = instrument / "bob" / os.fsdecode(raw)
        folder.mkdir(parents=True)
        for inner in LATIN1:
            (folder / os.fsdecode(inner)).write_bytes(raw + b"/" + inner)
            sources.add(b"bob/" + raw + b"/" + inner)
    return sources


@pytest.mark.skipif(os.name == "nt", reason="builds names Windows itself refuses")
def test_hostile_names_each_land_in_their_own_valid_bag_with_their_own_bytes(tmp_path: Path) -> None:
    instrument = tmp_path / "instrument"
    sources = _write_corpus(instrument)
    (tmp_path / "archive").mkdir()

    result = run_scan(write_config(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    found = _payload_by_source(tmp_path / "archive", instrument)
    assert set(found) == sources
    # One bag per session folder, none merged; and no two archive paths differ only by case.
    bags = {bag for bag, _ in found.values()}
    assert len(bags) == len(SESSION_PAIRS) + len(LATIN1)
    keys = [f"{bag.relative_to(tmp_path / 'archive')}/{path}".casefold() for bag, path in found.values()]
    assert len(set(keys)) == len(keys)
    # The original name is recorded beside the archive name.
    sidecar = json.loads((tmp_path / "archive/TEST-SCOPE-01/alice/10~3A30/harvest.json").read_text())
    assert sidecar["dataset"]["key"] == "alice/10:30"
    assert sidecar["dataset"]["archive_key"] == "alice/10~3A30"
    by_path = {entry["path"]: entry["source_path"] for entry in sidecar["files"]}
    assert by_path["data/my~2520image.tif"] == "alice/10:30/my%20image.tif"
    assert by_path["data/ends in space~20"] == "alice/10:30/ends in space "

    # Status and the scan summary print non-UTF-8 names without failing.
    status = subprocess.run(
        harvest_command("status", "--config", str(tmp_path / "config.yaml")),
        capture_output=True,
        env=subprocess_env(),
    )
    assert b"Traceback" not in status.stderr, status.stderr

    # Harvesting again finds nothing new and writes nothing twice.
    again = run_scan(tmp_path / "config.yaml")
    assert again.returncode == 0, again.stderr
    assert set(_payload_by_source(tmp_path / "archive", instrument)) == sources


def test_case_twins_arriving_later_never_overwrite_the_first(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "alice" / "s1"
    session.mkdir(parents=True)
    (session / "Image.tif").write_bytes(b"first")
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    assert run_scan(config).returncode == 0
    (session / "image.tif").write_bytes(b"second")
    (tmp_path / "instrument" / "Alice" / "s1").mkdir(parents=True)
    (tmp_path / "instrument" / "Alice" / "s1" / "Image.tif").write_bytes(b"third")

    assert run_scan(config).returncode == 0

    found = _payload_by_source(tmp_path / "archive", tmp_path / "instrument")
    assert set(found) == {b"alice/s1/Image.tif", b"alice/s1/image.tif", b"Alice/s1/Image.tif"}
    assert found[b"alice/s1/Image.tif"][1] == "data/Image.tif"
    assert found[b"alice/s1/image.tif"][1] == "data/image~~2.tif"
    assert found[b"Alice/s1/Image.tif"][0].parent.name == "Alice~~2"

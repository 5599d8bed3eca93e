from __future__ import annotations

import hashlib
import json
from pathlib import Path

import bagit
import jsonschema
from referencing import Registry, Resource

from agent.config.models import Instrument
from agent.package.bagit import PayloadEntry, encode_manifest_path
from agent.package.sidecar import MissingFile, PackageFile, bag_path_for, build_package


def validate_harvest_json(sidecar: dict[str, object]) -> None:
    """Validate against the published schemas (harvest-2 refers to metadata-2)."""
    schemas = Path(__file__).parents[2] / "docs" / "schemas"
    harvest = json.loads((schemas / "harvest-2.schema.json").read_text())
    metadata = json.loads((schemas / "metadata-2.schema.json").read_text())
    registry = Registry().with_resource("metadata-2.schema.json", Resource.from_contents(metadata))
    jsonschema.Draft202012Validator(harvest, registry=registry).validate(sidecar)


def write_bag(tmp_path: Path, files: dict[str, bytes]) -> Path:
    bag = tmp_path / "bag"
    entries = []
    for name, content in files.items():
        target = bag / "data" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        entry = PayloadEntry(name, hashlib.sha256(content).hexdigest(), len(content))
        entries.append(PackageFile(entry, f"alice/s1/{name}", 1_700_000_000_000_000_000))
    package = build_package(
        Instrument(id="FAC-01", name="Scope", facility="Facility"),
        dataset_key="alice/s1",
        archive_key="alice/s1",
        dataset_fields={"operator": "alice", "session": "s1"},
        revision=2,
        opened_at=1_700_000_000.0,
        closed_at=1_700_000_100.0,
        close_reason="idle",
        files=entries,
        missing=[MissingFile("alice/s1/locked.tif", "permission denied")],
        now=1_700_000_200.0,
    )
    assert [tag.name for tag in package.tag_files][-2:] == ["manifest-sha256.txt", "tagmanifest-sha256.txt"]
    for tag in package.tag_files:
        (bag / tag.name).write_bytes(tag.content)
    return bag


def test_bag_validates_with_bagit_python(tmp_path: Path) -> None:
    bag_path = write_bag(tmp_path, {"a.tif": b"abc", "sub dir/é.dcm": b"\x00" * 100, "empty.txt": b""})
    bag = bagit.Bag(str(bag_path))
    bag.validate()  # raises BagValidationError on any problem
    assert bag.info["Payload-Oxum"] == "103.3"
    assert bag.info["Instrument-Id"] == "FAC-01"
    assert bag.info["Contact-Name"] == "alice"
    sidecar = json.loads((bag_path / "harvest.json").read_text())
    validate_harvest_json(sidecar)
    assert sidecar["dataset"]["revision"] == 2
    assert sidecar["dataset"]["complete"] is False
    assert sidecar["missing"] == [{"source_path": "alice/s1/locked.tif", "reason": "permission denied"}]
    assert {entry["path"] for entry in sidecar["files"]} == {"data/a.tif", "data/sub dir/é.dcm", "data/empty.txt"}


def test_tampered_payload_fails_validation(tmp_path: Path) -> None:
    bag_path = write_bag(tmp_path, {"a.tif": b"abc"})
    (bag_path / "data" / "a.tif").write_bytes(b"abd")
    try:
        bagit.Bag(str(bag_path)).validate()
    except bagit.BagValidationError:
        return
    raise AssertionError("a changed payload file must fail validation")


def test_manifest_path_encoding_and_bag_path() -> None:
    assert encode_manifest_path("100%.txt") == "100%.txt"
    assert encode_manifest_path("a%0Ab\nc\rd") == "a%250Ab%0Ac%0Dd"
    assert bag_path_for("FAC:01", "alice/s 1") == "FAC~3A01/alice/s 1"
    assert bag_path_for("FAC-01", "alice/s1", "room 2") == "FAC-01/room 2/alice/s1"

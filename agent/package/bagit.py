"""BagIt (RFC 8493) tag files for a dataset, built in memory and written by a destination.

The payload sits under ``data/``; the tag files describe it. ``manifest-sha256.txt``
and ``tagmanifest-sha256.txt`` are written last, so their presence at the destination
means "this bag is complete and every byte was verified".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

BAGIT_VERSION = "1.0"
PAYLOAD_MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
COMMIT_MARKERS = (TAG_MANIFEST, PAYLOAD_MANIFEST)


@dataclass(frozen=True)
class PayloadEntry:
    path_in_dataset: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class TagFile:
    name: str
    content: bytes


_ESCAPE_LIKE = re.compile(r"%(?=[0-9A-Fa-f]{2})")


def encode_manifest_path(path: str) -> str:
    """Percent-encode CR and LF (RFC 8493 §2.1.3), and % where it could be read as an escape.

    The RFC encodes every %, but bagit-python (the reference validator archives use)
    decodes only %0D and %0A; encoding a % only when two hex digits follow it keeps
    names like ``100%.txt`` valid for both readings.
    """
    return _ESCAPE_LIKE.sub("%25", path).replace("\r", "%0D").replace("\n", "%0A")


def _info_value(value: str) -> str:
    # Tag values are single lines here; a newline would start a new label.
    return " ".join(value.split())


def bag_info(labels: Sequence[tuple[str, str]], payload: Sequence[PayloadEntry]) -> bytes:
    total_bytes = sum(entry.size_bytes for entry in payload)
    lines = [f"{label}: {_info_value(value)}" for label, value in labels if value]
    lines.append(f"Payload-Oxum: {total_bytes}.{len(payload)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def payload_manifest(payload: Sequence[PayloadEntry]) -> bytes:
    lines = [
        f"{entry.sha256}  data/{encode_manifest_path(entry.path_in_dataset)}"
        for entry in sorted(payload, key=lambda entry: entry.path_in_dataset)
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def build_bag(
    labels: Sequence[tuple[str, str]], payload: Sequence[PayloadEntry], extra_tag_files: Sequence[TagFile]
) -> list[TagFile]:
    """All tag files in the order they must be written (the manifests last)."""
    files = [
        TagFile("bagit.txt", f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n".encode()),
        TagFile("bag-info.txt", bag_info(labels, payload)),
        *extra_tag_files,
        TagFile(PAYLOAD_MANIFEST, payload_manifest(payload)),
    ]
    tag_manifest = "".join(f"{hashlib.sha256(tag_file.content).hexdigest()}  {tag_file.name}\n" for tag_file in files)
    files.append(TagFile(TAG_MANIFEST, tag_manifest.encode("utf-8")))
    return files

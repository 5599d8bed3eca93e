"""JSON text of the package's documents: readable, and quick for thousands of files.

``json.dumps`` with ``indent`` runs the pure-Python encoder (CPython's C encoder does not
indent): for a bag of thousands of files that was most of a commit's CPU time. Here the
document is indented as before, except its one long list (the files, the crate's graph),
whose entries are written one per line by the C encoder.
"""

from __future__ import annotations

import json
import secrets
from typing import Any


def readable_json(document: dict[str, Any], long_list: str, indent: int) -> str:
    """*document* as indented JSON, with each entry of ``document[long_list]`` on one line."""
    marker = f"harvest-list-{secrets.token_hex(16)}"  # no value in the document can equal it
    entries = [json.dumps(entry, ensure_ascii=False) for entry in document[long_list]]
    text = json.dumps({**document, long_list: marker}, indent=indent, ensure_ascii=False)
    inner, outer = " " * (2 * indent), " " * indent
    listed = "[\n" + ",\n".join(inner + entry for entry in entries) + "\n" + outer + "]" if entries else "[]"
    before, _, after = text.partition(json.dumps(marker))
    return before + listed + after

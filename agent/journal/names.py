"""The journal's archive-name table: each source name handed out once, injectively.

Part of the journal (it runs inside a journal transaction); the encoding itself is
``agent.package.names``.
"""

from __future__ import annotations

import sqlite3

from agent.config.models import safe_component
from agent.package.names import disambiguated, encode_component, fold_key


def archive_name(db: sqlite3.Connection, scope: str, source_path: str) -> str:
    """The archive path of *source_path* within *scope* (a root's datasets, a dataset's files).

    Each folder level's names are handed out once and kept: an encoded name
    (``agent.package.names``) that some archive would take for one already given in
    the same folder (same name but for case or Unicode normalization) gets a
    distinct twin name, so no two sources ever share an archive path.
    """
    parent = ""
    for name in source_path.split("/"):
        row = db.execute(
            "SELECT archive FROM archive_names WHERE scope = ? AND parent = ? AND source = ?",
            (scope, parent, name),
        ).fetchone()
        if row is not None:
            archive = str(row[0])
        else:
            encoded = archive = encode_component(name)
            number = 1
            while db.execute(
                "SELECT 1 FROM archive_names WHERE scope = ? AND parent = ? AND fold = ?",
                (scope, parent, fold_key(archive)),
            ).fetchone():
                number += 1
                archive = disambiguated(encoded, number)
            db.execute(
                "INSERT INTO archive_names (scope, parent, source, archive, fold) VALUES (?, ?, ?, ?, ?)",
                (scope, parent, name, archive, fold_key(archive)),
            )
        parent = f"{parent}/{archive}" if parent else archive
    return parent


def legacy_archive_key(dataset_key: str) -> str:
    """The folder a dataset recorded before journal v5 has at the archive (kept where it is)."""
    return "/".join(safe_component(part) for part in dataset_key.split("/"))

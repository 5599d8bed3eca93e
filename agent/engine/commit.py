"""The commit stage's input: a closed dataset's package, as one destination holds it.

Every file verified at the destination is listed with its checksum and metadata; every
other file (failed, quarantined, never delivered) and every part that could not be read
is listed as missing with the reason, so the package says exactly what it lacks.
"""

from __future__ import annotations

import json
import time
from typing import NamedTuple

from agent.config.models import Instrument
from agent.engine.roots import Roots
from agent.journal.store import DatasetRecord, DeliveryState, FileState, Journal
from agent.package.bagit import PayloadEntry
from agent.package.sidecar import DatasetPackage, MissingFile, PackageFile, build_package


class BuiltPackage(NamedTuple):
    package: DatasetPackage
    files: int
    missing: int


def package_for(
    journal: Journal, dataset: DatasetRecord, destination: str, instrument: Instrument, roots: Roots
) -> BuiltPackage:
    states = journal.delivery_states(dataset.id, destination)
    file_errors = journal.file_errors(dataset.id)
    metadata_by_file = journal.file_metadata(dataset.id)
    files: list[PackageFile] = []
    missing: list[MissingFile] = []
    for record in journal.dataset_files(dataset.id):
        state, error = states.get(record.id, (None, None))
        if state == DeliveryState.VERIFIED and record.sha256:
            entry = PayloadEntry(record.bag_name, record.sha256, record.identity.size_bytes)
            metadata_json = metadata_by_file.get(record.id)
            metadata = json.loads(metadata_json) if metadata_json else None
            files.append(PackageFile(entry, record.rel_path, record.identity.mtime_ns, metadata))
        elif record.state != FileState.IGNORED:
            missing.append(MissingFile(record.rel_path, error or file_errors.get(record.id) or "not delivered"))
    # Parts of the dataset that could not be read (an unlistable folder, a file still
    # written at a forced close): the package is not complete and says what and why.
    missing += [MissingFile(path, reason) for path, reason in journal.dataset_gaps(dataset.id)]
    package = build_package(
        instrument,
        dataset_key=dataset.dataset_key,
        archive_key=dataset.archive_key or dataset.dataset_key,
        dataset_fields=dataset.fields,
        revision=dataset.revision,
        opened_at=dataset.opened_at,
        closed_at=dataset.closed_at,
        close_reason=dataset.close_reason,
        files=files,
        missing=missing,
        now=time.time(),
        warnings=journal.dataset_warnings(dataset.id),
        root_name=roots.name(dataset.root),
        completeness=journal.dataset_completeness(dataset.id),
        verification={"destination": destination, "methods": journal.verification_counts(dataset.id, destination)},
    )
    return BuiltPackage(package, len(files), len(missing))

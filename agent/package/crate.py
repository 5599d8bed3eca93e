"""``ro-crate-metadata.json`` (RO-Crate 1.1) for a dataset bag.

The bag's root is the crate's root, so payload files keep their ``data/...`` ids. The
acquisition is a ``CreateAction`` whose ``instrument`` is the microscope or scanner and
whose ``agent`` is the operator (the ``{operator}`` dataset field), following the
RO-Crate provenance pattern; each ``File`` carries ``sha256``, ``contentSize`` and
``encodingFormat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.config.models import Instrument
from agent.package.jsontext import readable_json

RO_CRATE_METADATA = "ro-crate-metadata.json"
CONTEXT = "https://w3id.org/ro/crate/1.1/context"


def build_crate(
    instrument: Instrument,
    *,
    dataset_key: str,
    dataset_fields: dict[str, str],
    revision: int,
    committed_at: str,
    date_range: tuple[str | None, str | None],
    files: Sequence[dict[str, Any]],
) -> bytes:
    """*files*: dicts with ``path``, ``size_bytes``, ``sha256``, ``media_type``, ``modified_at``."""
    instrument_id = f"#instrument-{instrument.id}"
    graph: list[dict[str, Any]] = [
        {
            "@id": RO_CRATE_METADATA,
            "@type": "CreativeWork",
            "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
            "about": {"@id": "./"},
        },
        {
            "@id": "./",
            "@type": "Dataset",
            "name": f"{instrument.name or instrument.id}: {dataset_key}",
            "description": f"Acquisition {dataset_key} from instrument {instrument.id}, revision {revision}",
            "identifier": dataset_key,
            "datePublished": committed_at,
            "version": str(revision),
            "hasPart": [{"@id": item["path"]} for item in files],
            **({"publisher": {"@id": "#facility"}} if instrument.facility else {}),
        },
    ]
    for item in files:
        graph.append(
            {
                "@id": item["path"],
                "@type": "File",
                "name": item["path"].rsplit("/", 1)[-1],
                "contentSize": str(item["size_bytes"]),
                "encodingFormat": item["media_type"],
                "sha256": item["sha256"],
                "dateModified": item["modified_at"],
            }
        )
    graph.append(
        {
            "@id": instrument_id,
            "@type": "IndividualProduct",
            "name": instrument.name or instrument.id,
            "identifier": instrument.pidinst or instrument.id,
            **({"manufacturer": instrument.manufacturer} if instrument.manufacturer else {}),
            **({"model": instrument.model} if instrument.model else {}),
            **({"serialNumber": instrument.serial_number} if instrument.serial_number else {}),
        }
    )
    action: dict[str, Any] = {
        "@id": "#acquisition",
        "@type": "CreateAction",
        "name": f"Acquisition {dataset_key}",
        "instrument": {"@id": instrument_id},
        "result": {"@id": "./"},
    }
    start, end = date_range
    if start:
        action["startTime"] = start
    if end:
        action["endTime"] = end
    operator = dataset_fields.get("operator")
    if operator:
        action["agent"] = {"@id": "#operator"}
        graph.append({"@id": "#operator", "@type": "Person", "name": operator})
    if instrument.facility:
        graph.append({"@id": "#facility", "@type": "Organization", "name": instrument.facility})
    graph.append(action)
    return (readable_json({"@context": CONTEXT, "@graph": graph}, "@graph", indent=1) + "\n").encode()

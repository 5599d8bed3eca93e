"""The package's JSON text: the same document as json.dumps writes, laid out to be read."""

from __future__ import annotations

import json

import pytest

from agent.package.jsontext import readable_json


def test_the_text_is_the_same_document_with_one_entry_per_line() -> None:
    document = {
        "dataset": {"key": "alice/s1", "fields": {"operator": "Zoë"}},
        "warnings": ['"files"', "harvest-list-", "[\n]"],  # text that looks like the layout
        "files": [{"path": f"data/é{index}.tif", "metadata": {"channels": [{"name": "DAPI"}]}} for index in range(3)],
        "missing": [],
    }
    text = readable_json(document, "files", indent=2)
    assert json.loads(text) == document
    assert list(json.loads(text)) == list(document)  # key order kept
    lines = text.splitlines()
    assert sum(line.startswith('    {"path": "data/é') for line in lines) == 3
    assert '  "files": [' in lines and "  ]," in lines
    assert "Zoë" in text  # not escaped: the bag's text stays readable


def test_an_empty_list_and_a_missing_key() -> None:
    assert json.loads(readable_json({"@graph": []}, "@graph", indent=1)) == {"@graph": []}
    with pytest.raises(KeyError):
        readable_json({"other": 1}, "files", indent=2)

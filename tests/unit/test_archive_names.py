"""Archive names: the mapping from source names is injective, reversible and safe everywhere."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import pytest

from agent.journal.store import FileIdentity, Journal, SettledFile
from agent.package.names import (
    UnrepresentableName,
    decode_component,
    disambiguated,
    display,
    encode_component,
    fold_key,
)

NASTY = [
    "10:30", "10_30", "10~3A30", "run1", "run1.", "run1 ", "run1..", "run1. ", "CON", "CON.", "con", "Con.txt",
    "nul.txt", "NUL", "aux", "COM1", "com1.log", "LPT9", "COM¹", "trail.", "trail ", "trail", "a<b>c", 'say"hi"',
    "pipe|", "why?", "star*", "back\\slash", "tab\there", "new\nline", "cr\rname", "my%20image.tif", "%41%42.txt",
    "%25.txt", "100%.txt", "%", "~", "~~2", "a~b", "ends with space ", "\u00a0nbsp\u00a0", "é", "e\u0301",
    "日本語", ".hidden", "..", ".", "r\udce9sultat.txt", "\udcff\udcfe", "Image.TIF", "image.tif", "IMAGE.tif",
]  # fmt: skip
RESERVED_STEMS = {"CON", "PRN", "AUX", "NUL", "COM1", "COM9", "LPT1", "LPT9", "COM¹"}


def _windows_safe(name: str) -> bool:
    stem = name.split(".", 1)[0].upper()
    return (
        not any(char in '<>:"/\\|?*' or ord(char) < 0x20 for char in name)
        and not name.endswith((".", " "))
        and stem not in RESERVED_STEMS
    )


@pytest.mark.parametrize("name", NASTY)
def test_every_encoded_name_is_safe_for_windows_bagit_and_utf8(name: str) -> None:
    encoded = encode_component(name)
    assert _windows_safe(encoded), encoded
    assert encoded == encoded.strip(), "BagIt readers strip white space around a manifest path"
    assert "%" not in encoded or not any(
        encoded[i + 1 : i + 3].isalnum() and len(encoded[i + 1 : i + 3]) == 2 for i, c in enumerate(encoded) if c == "%"
    )
    encoded.encode("utf-8")  # never raises: every archive and manifest takes it
    assert decode_component(encoded) == name


def test_the_mapping_is_injective_on_the_corpus_and_on_random_names() -> None:
    encoded = {encode_component(name): name for name in NASTY}
    assert len(encoded) == len(set(NASTY))
    alphabet = "aA.: ~%_-\t\udce9é0"
    generator = random.Random(7)  # noqa: S311 - test data, not cryptography
    seen: dict[str, str] = {}
    for _ in range(5000):
        name = "".join(generator.choice(alphabet) for _ in range(generator.randint(1, 6)))
        result = encode_component(name)
        assert seen.setdefault(result, name) == name, (name, seen[result])
        assert decode_component(result) == name


def test_collision_pairs_from_the_field_map_to_different_names() -> None:
    pairs = [("10:30", "10_30"), ("run1", "run1."), ("run1", "run1 "), ("run1.", "run1 "), ("CON", "CON."),
             ("trail.", "trail "), ("a?b", "a_b")]  # fmt: skip
    for first, second in pairs:
        assert encode_component(first) != encode_component(second), (first, second)


def test_case_twins_share_a_fold_key_and_twin_names_never_collide_with_encoded_ones() -> None:
    assert fold_key(encode_component("Image.TIF")) == fold_key(encode_component("image.tif"))
    assert fold_key(encode_component("é")) == fold_key(encode_component("e\u0301"))
    twin = disambiguated(encode_component("image.tif"), 2)
    assert twin == "image~~2.tif"
    assert decode_component(twin) == "image.tif"
    assert all("~~" not in encode_component(name) for name in NASTY)
    assert disambiguated(".hidden", 3) == ".hidden~~3"


def test_a_name_too_long_once_encoded_is_refused_with_a_reason() -> None:
    assert encode_component("L" * 255) == "L" * 255
    with pytest.raises(UnrepresentableName, match="at most 255"):
        encode_component(":" * 100)


def test_display_shows_undecodable_bytes_and_keeps_text() -> None:
    assert display("r\udce9sultat.txt") == "r\\xe9sultat.txt"
    assert display("résultat") == "résultat"


def _settle(journal: Journal, rel_path: str, key: str, inode: int) -> None:
    journal.record_settled(
        [
            SettledFile(
                root="/r",
                rel_path=rel_path,
                identity=FileIdentity(1, inode, 3, 1),
                dataset_key=key,
                dataset_fields={},
                path_in_dataset=rel_path.split("/", 1)[1],
            )
        ]
    )


def test_journal_keeps_case_twins_and_non_utf8_names_apart(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    names = ["Run/Image.tif", "run/image.tif", "run/Image.tif", "RUN/x\udce9.tif", "run/sub/a", "run/SUB/b"]
    for inode, rel_path in enumerate(names, start=1):
        _settle(journal, rel_path, rel_path.split("/", 1)[0], inode)
    archive = {}
    for dataset_id in journal.open_dataset_ids():
        dataset = journal.dataset(dataset_id)
        for record in journal.dataset_files(dataset_id):
            archive[record.rel_path] = f"{dataset.archive_key}/{record.bag_name}"
    assert set(archive) == set(names), "every name, also the one that is not UTF-8, is stored losslessly"
    folded = [fold_key(path) for path in archive.values()]
    assert len(set(folded)) == len(folded), archive
    for first, second in itertools.combinations(archive.values(), 2):
        assert fold_key(first) != fold_key(second)
    assert archive["Run/Image.tif"] == "Run/Image.tif"
    assert archive["run/image.tif"] == "run~~2/image.tif"
    assert archive["run/Image.tif"] == "run~~2/Image~~2.tif"
    assert archive["RUN/x\udce9.tif"] == "RUN~~3/x~E9.tif"
    # Mappings are stable: the same source name always gets the same archive name.
    _settle(journal, "run/image.tif", "run", 99)
    found = journal.file_by_path("/r", "run/image.tif")
    assert found is not None and found.bag_name == "image.tif"
    journal.close()


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are bytes")
def test_os_names_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    path = tmp_path / os.fsdecode(b"r\xe9sultat.txt")
    path.write_bytes(b"x")
    (name,) = os.listdir(tmp_path)
    assert decode_component(encode_component(name)) == name
    assert encode_component(name) == "r~E9sultat.txt"

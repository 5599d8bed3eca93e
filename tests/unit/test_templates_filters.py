from __future__ import annotations

import pytest

from agent.pipeline.filters import PathFilter
from agent.rules.templates import DatasetTemplate


def test_template_fields_key_and_remainder() -> None:
    template = DatasetTemplate("{operator}/{project}/{session}")
    match = template.match("alice/p1/2026-11-22_s1/sub/a.tif")
    assert match is not None
    assert match.dataset_key == "alice/p1/2026-11-22_s1"
    assert match.fields == {"operator": "alice", "project": "p1", "session": "2026-11-22_s1"}
    assert match.path_in_dataset == "sub/a.tif"


def test_template_needs_a_file_below_the_dataset_folder() -> None:
    template = DatasetTemplate("{operator}/{session}")
    assert template.match("alice/readme.txt") is None
    assert template.match("readme.txt") is None


def test_template_literals_wildcards_and_partial_fields() -> None:
    template = DatasetTemplate("users/{operator}/{date}_*")
    match = template.match("users/bob/2026-01-02_run3/x.dcm")
    assert match is not None and match.fields == {"operator": "bob", "date": "2026-01-02"}
    assert template.match("guests/bob/2026-01-02_run3/x.dcm") is None
    assert template.match("users/bob/norun/x.dcm") is None


@pytest.mark.parametrize("bad", ["", "/abs", "a/", "{a}/{a}", "{a", "a/../b"])
def test_bad_templates_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        DatasetTemplate(bad)


def test_junk_and_in_progress_files_never_pass() -> None:
    path_filter = PathFilter()
    for name in ["a/Thumbs.db", "a/.DS_Store", "a/desktop.ini", "a/~$report.docx", "a/x.tmp", "a/x.partial", "a/._x"]:
        assert not path_filter.file_allowed(name), name
    assert path_filter.file_allowed("a/image.ome.tif")


def test_exclude_and_include_globs() -> None:
    path_filter = PathFilter(include=["*.tif", "**/*.dcm"], exclude=["**/scratch/**", "raw/*.tif"])
    assert path_filter.file_allowed("a/b/c.tif")
    assert path_filter.file_allowed("x.dcm")
    assert not path_filter.file_allowed("a/notes.txt")
    assert not path_filter.file_allowed("a/scratch/c.tif")
    assert not path_filter.file_allowed("raw/c.tif")
    assert path_filter.file_allowed("raw/deeper/c.tif")
    assert not path_filter.folder_allowed("a/scratch")


def test_the_name_fast_path_agrees_with_the_documented_globs() -> None:
    """Files still being written are refused by plain string tests (a reconcile asks
    millions of times); they must refuse exactly what the documented globs match."""
    from agent.pipeline.filters import IN_PROGRESS_PATTERNS, glob_to_regex

    globs = [glob_to_regex(pattern) for pattern in IN_PROGRESS_PATTERNS]
    names = ["a.tmp", ".tmp", "a.TMP", "a.tmp.tif", "a.temp", "scan.partial", "x.part", "x.party", "f.crdownload",
             "~$report.docx", "~report", ".~lock.a.odt#", ".~lockx", "v.swp", "v.swpx", "plain.tif", "tmp"]  # fmt: skip
    path_filter = PathFilter()
    for name in names:
        in_progress = any(glob.match(name) for glob in globs)
        assert PathFilter.is_in_progress(f"some/folder/{name}") == in_progress, name
        assert path_filter.file_allowed(f"some/folder/{name}") == (not in_progress), name

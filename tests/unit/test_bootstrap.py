"""scripts/bootstrap.sh refuses an old Python before doing anything, with what to do instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]

OLD_PYTHON = """#!/bin/sh
# Answers like Python 3.10 would to bootstrap.sh's two questions.
case "$2" in *version_info[[]:3[]]*) echo 3.10.12 ;; *) exit 1 ;; esac
"""


def _project_copy(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts" / "bootstrap.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _old_python(folder: Path, name: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(OLD_PYTHON)
    path.chmod(0o755)
    return path


def test_an_old_python_named_by_PYTHON_is_refused_and_nothing_is_built(tmp_path: Path) -> None:
    project = _project_copy(tmp_path / "project")
    old = _old_python(tmp_path / "bin", "python3.10")
    result = subprocess.run(
        ["bash", "scripts/bootstrap.sh", "runtime"], cwd=project, capture_output=True, text=True,
        env={**os.environ, "PYTHON": str(old)}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "is Python 3.10.12; the agent needs 3.11 or newer" in result.stderr
    assert not (project / ".venv").exists()


def test_without_a_recent_python_anywhere_it_says_how_to_get_one(tmp_path: Path) -> None:
    project = _project_copy(tmp_path / "project")
    bin_dir = tmp_path / "bin"
    _old_python(bin_dir, "python3")
    for tool in ("bash", "sh", "cat", "sha256sum", "cut", "dirname", "id", "rm", "sed"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = subprocess.run(
        [str(bin_dir / "bash"), "scripts/bootstrap.sh", "runtime"], cwd=project, capture_output=True, text=True,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "needs Python 3.11 or newer (python3 is 3.10.12)" in result.stderr
    assert "PYTHON=/path/to/python3.11" in result.stderr

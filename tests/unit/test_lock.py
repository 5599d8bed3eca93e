"""constraints.txt: every install gets the versions the tests ran with, and they resolve offline."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
WHEELS = ROOT / ".venv" / "wheels"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, separator, version = line.partition("==")
            assert separator, f"not an exact pin: {line!r}"
            pins[_canonical(name)] = version.strip()
    return pins


def test_every_declared_requirement_is_locked_within_its_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        name = _canonical(requirement.name)
        assert name in locked, f"{requirement.name} is not in constraints.txt: run scripts/lock.sh"
        assert requirement.specifier.contains(locked[name], prereleases=True), (text, locked[name])


def test_the_test_environment_is_exactly_the_locked_set() -> None:
    locked = _locked()
    installed = {
        _canonical(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if _canonical(dist.metadata["Name"]) not in ("harvest-agent", "pip")
    }
    assert {name: version for name, version in installed.items() if locked.get(name) != version} == {}
    assert set(locked) <= set(installed), set(locked) - set(installed)


def test_the_locked_set_resolves_offline_from_the_downloaded_wheels() -> None:
    assert WHEELS.is_dir(), "scripts/bootstrap.sh downloads the locked set into .venv/wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
         "--no-index", "--find-links", str(WHEELS), "--ignore-installed", "-r", str(ROOT / "constraints.txt")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]

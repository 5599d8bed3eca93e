"""The Debian package: built from the repository, inspected with dpkg-deb, run from a scratch root."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_deb_builds_installs_into_a_scratch_root_and_runs(tmp_path: Path) -> None:
    built = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build-deb.sh"), str(tmp_path / "dist")],
        capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    deb = Path(built.stdout.strip().splitlines()[-1])
    assert deb.name.startswith("harvest-agent_") and deb.suffix == ".deb"

    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: harvest-agent" in info and "Depends: python3" in info
    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./opt/harvest-agent/bin/harvest", "./usr/bin/harvest -> /opt/harvest-agent/bin/harvest",
                 "./lib/systemd/system/harvest-agent.service", "./etc/harvest-agent/config.yaml"):  # fmt: skip
        assert path in contents, path
    conffiles = subprocess.run(["dpkg-deb", "--field", str(deb), "Package"], capture_output=True, text=True)
    assert conffiles.stdout.strip() == "harvest-agent"

    scratch = tmp_path / "scratch"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(scratch)], check=True)
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    assert (control / "conffiles").read_text().split() == ["/etc/harvest-agent/config.yaml"]  # kept on upgrade
    assert "purge" in (control / "postrm").read_text()  # state removed only on purge
    assert "systemctl start" not in (control / "postinst").read_text()  # nothing started until configured

    python = scratch / "opt" / "harvest-agent" / "bin" / "python"
    assert (scratch / "opt/harvest-agent/bin/harvest").read_text().splitlines()[0] == "#!/opt/harvest-agent/bin/python"
    version = subprocess.run([str(python), "-m", "agent", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("harvest-agent ")
    check = subprocess.run(
        [str(python), "-m", "agent", "config", "check", str(scratch / "etc/harvest-agent/config.yaml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "OK (instrument CHANGE-ME-01" in check.stdout


def test_pyinstaller_spec_builds_a_working_one_folder_harvest(tmp_path: Path) -> None:
    """The Windows spec, built here for Linux: it proves the spec collects everything the
    agent imports lazily (extractors, transports, ome-types' xsdata plug-in). The Windows
    build itself is not exercised on Linux."""
    import json
    import sys

    spec = ROOT / "packaging" / "windows" / "harvest-agent.spec"
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(tmp_path / "dist"),
         "--workpath", str(tmp_path / "build"), str(spec)],
        capture_output=True, text=True, check=True, timeout=900, cwd=spec.parent,
    )  # fmt: skip
    frozen = tmp_path / "dist" / "harvest" / "harvest"
    assert subprocess.run([str(frozen), "--version"], capture_output=True, text=True, check=True).stdout.startswith(
        "harvest-agent "
    )
    data = ROOT / "tests" / "data"
    inspected = subprocess.run(
        [str(frozen), "inspect", "--json", str(data / "ome-tiff/aics/s_1_t_1_c_1_z_1.ome.tiff"),
         str(data / "dicom/single/CT_small.dcm")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    formats = [json.loads(line)["format"] for line in inspected.stdout.splitlines()]
    assert formats == ["ome-tiff", "dicom"]

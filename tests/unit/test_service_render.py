from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import harvest_command, subprocess_env, write_config


def test_drop_in_makes_roots_read_only_and_destinations_writable(tmp_path: Path) -> None:
    watch = [
        {"path": str(tmp_path / "data" / "lsm 980"), "name": "lsm"},
        {"path": str(tmp_path / "data" / "sted"), "name": "sted"},
    ]
    config = write_config(tmp_path, watch=watch)
    result = subprocess.run(
        harvest_command("service", "render", "--config", str(config), "--output", str(tmp_path / "units")),
        capture_output=True, text=True, env=subprocess_env(), check=True,
    )  # fmt: skip
    drop_in = (tmp_path / "units" / "harvest-agent.service.d" / "paths.conf").read_text()
    assert "wrote" in result.stdout
    assert f'ReadOnlyPaths="{tmp_path / "data" / "lsm 980"}"' in drop_in
    assert f"ReadOnlyPaths={tmp_path / 'data' / 'sted'}" in drop_in
    assert f"ReadWritePaths={tmp_path / 'state'}" in drop_in
    assert f"ReadWritePaths={tmp_path / 'archive'}" in drop_in
    assert drop_in.splitlines()[1] == "[Service]"


def test_relative_paths_are_normalised_so_systemd_applies_the_sandbox(tmp_path: Path) -> None:
    import shutil

    from agent.cli.service import render_drop_in
    from agent.config import load_config

    (tmp_path / "demo" / "instrument").mkdir(parents=True)
    (tmp_path / "demo" / "archive").mkdir()
    (tmp_path / "config-examples").mkdir()
    config_path = write_config(
        tmp_path,
        watch=[{"path": "../demo/instrument", "dataset": "{operator}/{session}"}],
        destinations=[{"name": "archive", "type": "filesystem", "path": "../demo/./archive"}],
        state_dir="../demo/state",
    )
    moved = config_path.rename(tmp_path / "config-examples" / "config.yaml")
    config = load_config(moved)
    assert config.watch[0].path == tmp_path / "demo" / "instrument"
    assert config.state_dir == tmp_path / "demo" / "state"
    drop_in = render_drop_in(config)
    assert "/../" not in drop_in and "/./" not in drop_in
    assert f"ReadOnlyPaths={tmp_path / 'demo' / 'instrument'}" in drop_in
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # where systemd is installed, it must not ignore any line
        unit = tmp_path / "harvest-agent.service"
        unit.write_text("[Service]\nExecStart=/bin/true\n" + drop_in.split("[Service]", 1)[-1])
        result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
        assert "ignoring" not in result.stderr.lower() + result.stdout.lower(), result.stderr

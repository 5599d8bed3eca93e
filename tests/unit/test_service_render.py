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

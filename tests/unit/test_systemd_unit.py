"""The systemd unit: verified by systemd-analyze, exposure <= 1.5 (docs/install.md records it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).parents[2] / "systemd" / "harvest-agent.service"


def test_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of the test prerequisites (systemd package)"
    # The packaged path does not exist on a test machine: point ExecStart at a real binary.
    unit = tmp_path / "harvest-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/harvest-agent/bin/harvest", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "harvest-agent.service" not in result.stderr, result.stderr


def test_exposure_is_at_most_1_5() -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze
    result = subprocess.run(
        [analyze, "security", "--offline=yes", str(UNIT)], capture_output=True, text=True, check=False
    )
    found = re.search(r"Overall exposure level for harvest-agent\.service: ([0-9.]+)", result.stdout)
    assert found, result.stdout[-500:] + result.stderr[-500:]
    assert float(found.group(1)) <= 1.5


def test_unit_keeps_the_promises() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=\n", "StateDirectory=harvest-agent", "MemoryDenyWriteExecute=yes"):  # fmt: skip
        assert line in text, line

"""`harvest --help` and every command's help read cleanly: one-line summaries, every option explained."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from agent.cli.main import app


def _commands(group: Any, prefix: str = "harvest") -> list[tuple[str, Any]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if hasattr(command, "commands"):
            found.extend(_commands(command, f"{prefix} {name}"))
    return found


def test_every_command_has_a_whole_one_line_summary_and_every_option_a_help() -> None:
    root = typer.main.get_command(app)
    commands = _commands(root)
    assert len(commands) >= 16
    for path, command in commands:
        summary = command.get_short_help_str(limit=60)
        assert summary and not summary.endswith("..."), f"{path}: {summary!r}"
        for parameter in command.params:
            assert getattr(parameter, "help", None), f"{path} {parameter.name} has no help"


def test_help_has_no_type_placeholders_and_lists_commands_in_the_operators_order() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    assert "<bool>" not in top.output
    listed = [line.split()[0] for line in top.output.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[:3] == ["status", "watch", "pause"] and listed.index("run") > listed.index("doctor")
    status = runner.invoke(app, ["status", "--help"])
    assert "<bool>" not in status.output and "--json" in status.output
    # The exit codes paragraph wraps as one paragraph: "2 down" stays together.
    assert "2 down" in " ".join(status.output.split())

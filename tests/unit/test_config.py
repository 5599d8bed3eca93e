from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.config import ConfigInvalid, load_config, parse_config, resolve_config_path
from agent.config.loader import default_config_path
from agent.config.models import FilesystemDestination, S3Destination
from agent.errors import ConfigError
from tests.helpers import harvest_command, subprocess_env

MINIMAL = """\
version: 1
instrument:
  id: FAC-LSM980-01            # required: stable id (facility inventory id or PIDINST handle)
  name: Zeiss LSM 980, room 2.14
  manufacturer: Zeiss
  model: LSM 980
  serial_number: "2801000123"
  facility: Example Imaging Facility
state_dir: /var/lib/harvest-agent
watch:
  - path: /data/lsm980
    dataset: "{operator}/{session}"   # template relative to the root: each match is one dataset
    exclude: ["**/*.tmp"]
    polling: false                    # true for SMB/NFS mounts
settle:
  quiet_seconds: 30                   # a file must be unchanged this long (local monotonic clock)
  dataset_idle_seconds: 300           # a dataset closes after this long with no member changing
destinations:
  - name: archive
    type: filesystem
    path: /mnt/archive
"""


def test_minimal_config_from_the_issue_loads_as_written() -> None:
    config = parse_config(MINIMAL, Path("c.yaml"))
    assert config.instrument.id == "FAC-LSM980-01"
    assert config.instrument.serial_number == "2801000123"
    assert config.watch[0].template.field_names == ["operator", "session"]
    assert config.settle.quiet_seconds == 30
    destination = config.destinations[0]
    assert isinstance(destination, FilesystemDestination) and destination.path == Path("/mnt/archive")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text, Path("c.yaml"))
    return [str(problem) for problem in caught.value.problems]


def test_misspelt_key_names_file_line_path_and_suggestion() -> None:
    problems = problems_of(MINIMAL.replace("quiet_seconds", "quiet_secnds"))
    assert problems == ["c.yaml:16: settle.quiet_secnds: unknown key; did you mean 'quiet_seconds'?"]


def test_unknown_key_in_a_list_item() -> None:
    problems = problems_of(MINIMAL.replace("    polling: false", "    poling: false"))
    assert problems == ["c.yaml:14: watch[0].poling: unknown key; did you mean 'polling'?"]


def test_missing_required_instrument_id() -> None:
    text = MINIMAL.replace(
        "  id: FAC-LSM980-01            # required: stable id (facility inventory id or PIDINST handle)\n", ""
    )
    problems = problems_of(text)
    assert problems == ["c.yaml:2: instrument.id: required key is missing"]


def test_wrong_type_says_what_was_found() -> None:
    problems = problems_of(MINIMAL.replace("quiet_seconds: 30", "quiet_seconds: soon"))
    assert len(problems) == 1
    assert problems[0].startswith("c.yaml:16: settle.quiet_seconds: must be a valid number")
    assert "'soon'" in problems[0]


def test_pattern_errors_say_what_is_wanted_in_words() -> None:
    text = MINIMAL + "  - name: up\n    type: tus\n    url: ftp://host/files/\n"
    problems = problems_of(text.replace("  id: FAC-LSM980-01", "  id: -lsm 980"))
    assert any("instrument.id: must start with a letter or digit" in problem for problem in problems), problems
    assert any("destinations[1].url: must start with http:// or https://" in problem for problem in problems)
    assert not any("should match pattern" in problem or "Value error" in problem for problem in problems)


def test_bad_template_and_unknown_destination_type() -> None:
    problems = problems_of(MINIMAL.replace('"{operator}/{session}"', '"{operator}/{session"'))
    assert "stray brace" in problems[0] and problems[0].startswith("c.yaml:12: watch[0].dataset")
    problems = problems_of(MINIMAL.replace("type: filesystem", "type: ftp"))
    assert problems == [
        "c.yaml:20: destinations[0].type: unknown type 'ftp'; expected one of: 'filesystem', 'tus', 's3', 'sftp'"
    ]


def test_invalid_yaml_is_one_located_problem() -> None:
    problems = problems_of("version: 1\ninstrument: [unclosed\n")
    assert len(problems) == 1 and problems[0].startswith("c.yaml:3: not valid YAML")


def test_overlapping_roots_and_duplicate_destinations_rejected() -> None:
    text = MINIMAL.replace(
        "    polling: false                    # true for SMB/NFS mounts\n",
        "    polling: false\n  - path: /data/lsm980/sub\n",
    )
    assert any("must not overlap" in problem for problem in problems_of(text))
    text = MINIMAL + "  - name: archive\n    type: filesystem\n    path: /x\n"
    assert any("repeated: archive" in problem for problem in problems_of(text))


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    text = MINIMAL.replace("/var/lib/harvest-agent", "state").replace("/data/lsm980", "inst")
    (tmp_path / "c.yaml").write_text(text.replace("/mnt/archive", "archive"))
    config = load_config(tmp_path / "c.yaml")
    assert config.state_dir == tmp_path / "state"
    assert config.watch[0].path == tmp_path / "inst"
    destination = config.destinations[0]
    assert isinstance(destination, FilesystemDestination) and destination.path == tmp_path / "archive"


def test_every_path_in_the_config_is_anchored_and_normalised(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  - name: store\n    type: s3\n    bucket: b\n    ca_bundle: certs/../certs/ca.pem\n"
        "metrics:\n  listen: '127.0.0.1:9464'\n  tls: {certificate: m.crt, key: ./keys/m.key}\n"
    )
    (tmp_path / "c.yaml").write_text(text)
    config = load_config(tmp_path / "c.yaml")
    store = config.destinations[1]
    assert isinstance(store, S3Destination) and store.ca_bundle == tmp_path / "certs/ca.pem"
    assert config.metrics is not None and config.metrics.tls is not None
    assert (config.metrics.tls.certificate, config.metrics.tls.key) == (tmp_path / "m.crt", tmp_path / "keys/m.key")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_path_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARVEST_CONFIG", "/from/env.yaml")
    assert resolve_config_path(Path("/explicit.yaml")) == Path("/explicit.yaml")
    assert resolve_config_path(None) == Path("/from/env.yaml")
    monkeypatch.delenv("HARVEST_CONFIG")
    assert resolve_config_path(None) == default_config_path()


def test_windows_default_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setenv("PROGRAMDATA", "C:\\ProgramData")
    assert str(default_config_path()).endswith("config.yaml")
    assert "harvest-agent" in str(default_config_path())


def test_configuration_reference_is_up_to_date() -> None:
    from agent.config.reference import reference

    committed = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == reference(), "run: python -m agent.config.reference > docs/configuration.md"


def test_config_examples_are_valid() -> None:
    examples = sorted((Path(__file__).parents[2] / "config-examples").glob("*.yaml"))
    assert examples
    for example in examples:
        load_config(example)


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_bomb(), "values once aliases are expanded"),
        ("a: " + "[" * 900 + "]" * 900 + "\n", "nested more than"),
        ("x:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, 60)) + "\n", "nested more than"),
        ("version: 1\nstate_dir: /var/lib/a\nstate_dir: /\n", "key 'state_dir' appears twice (lines 2 and 3)"),
        ("# padding\n" * 120_000, "larger than 1 MiB"),
    ],
    ids=["billion-laughs", "deep-flow", "deep-block", "duplicate-key", "huge"],
)
def test_hostile_yaml_is_a_located_one_line_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = subprocess.run(
        harvest_command("config", "check", str(path)), capture_output=True, text=True, env=subprocess_env(),
        timeout=60,  # a hang detector: a bomb must be refused, not expanded
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr and str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

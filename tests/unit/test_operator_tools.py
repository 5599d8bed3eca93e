"""Config show redaction, log secret masking, the acquisition guard, doctor helpers."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from agent.cli.doctor import _check_skew, count_folders, filesystem_type
from agent.config import load_config
from agent.config.models import GuardSettings
from agent.config.show import effective_yaml, redact
from agent.controls.guard import AcquisitionGuard
from agent.observe.logsetup import RedactingFormatter, log_file_path
from agent.secrets import credentials
from tests.helpers import write_config


def test_redaction_masks_url_userinfo_queries_and_secret_keys() -> None:
    data = {
        "url": "https://user:hunter22@archive.example/files/?X-Amz-Signature=abc",
        "endpoint_url": "https://s3.example",
        "password": "hunter22",
        "credential": "s3-key",
    }
    shown = redact(data)
    assert shown["url"] == "https://***@archive.example/files/?***"
    assert shown["endpoint_url"] == "https://s3.example"
    assert shown["password"] == "***"
    assert shown["credential"] == "s3-key"  # a name, not a secret


def test_config_show_prints_defaults_and_resolved_paths(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    text = effective_yaml(config)
    assert "quiet_seconds: 0.5" in text
    assert "bandwidth: 10MiB/s" in text  # the guard's default
    assert str(tmp_path / "state") in text


def test_a_resolved_secret_never_reaches_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARVEST_CREDENTIAL_ARCHIVE_TOKEN", "s3cr3t-token-value")
    credentials.resolve("archive-token")
    record = logging.LogRecord(
        "agent", logging.ERROR, __file__, 1, "upload failed: %s", ("bad s3cr3t-token-value",), None
    )
    assert RedactingFormatter(logging.Formatter("%(message)s")).format(record) == "upload failed: bad ***"
    try:
        raise ValueError("server said: token s3cr3t-token-value rejected")
    except ValueError:
        import sys as sys_module

        traced = logging.LogRecord("agent", logging.ERROR, __file__, 1, "failed", (), sys_module.exc_info())
    text = RedactingFormatter(logging.Formatter("%(message)s")).format(traced)
    assert "Traceback" in text and "s3cr3t-token-value" not in text  # tracebacks too


def test_credential_shaped_parts_of_any_text_are_masked() -> None:
    from agent.secrets.redact import redact

    assert redact("GET https://alice:hunter22@archive.example/x") == "GET https://***@archive.example/x"
    assert redact("PUT /b/k?X-Amz-Signature=abcdef123&part=1") == "PUT /b/k?X-Amz-Signature=***&part=1"
    assert redact("see /upload?token=abc123def") == "see /upload?token=***"
    assert redact("Authorization: Bearer abcdef123456") == "Authorization: Bearer ***"
    assert redact("a plain message about 10 files") == "a plain message about 10 files"


def test_log_file_auto_is_used_only_without_journald_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path))
    assert log_file_path(config) is None  # Linux: journald or the terminal collects stderr
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert log_file_path(config) == config.state_dir / "logs" / "harvest.log"
    explicit = load_config(write_config(tmp_path, logging={"file": "logs/agent.log"}))
    assert log_file_path(explicit) == tmp_path / "logs" / "agent.log"


def test_the_guard_turns_on_with_growth_and_off_after_quiet() -> None:
    now = [100.0]
    import threading

    guard = AcquisitionGuard(
        GuardSettings(bandwidth="4MiB/s", active_seconds=10), stop=threading.Event(), clock=lambda: now[0]
    )
    assert not guard.active and guard.rate() is None
    guard.growth_seen("/data/run/stack.tif")
    assert guard.active and guard.rate() == 4 << 20
    assert guard.facts()["guard_path"] == "/data/run/stack.tif"
    now[0] += 9.9
    assert guard.active
    now[0] += 0.2
    assert not guard.active and guard.rate() is None
    disabled = AcquisitionGuard(GuardSettings(enabled=False), stop=threading.Event())
    disabled.growth_seen("/x")
    assert not disabled.active


def test_the_filesystem_type_is_the_longest_mount_prefix() -> None:
    mounts = [("/", "ext4"), ("/mnt/scope", "cifs"), ("/mnt/scopeB", "nfs4")]
    assert filesystem_type(Path("/mnt/scope/run1"), mounts) == "cifs"
    assert filesystem_type(Path("/mnt/scopeB"), mounts) == "nfs4"
    assert filesystem_type(Path("/home/x"), mounts) == "ext4"


def test_folder_counting_stops_at_the_limit(tmp_path: Path) -> None:
    for index in range(30):
        (tmp_path / f"d{index}" / "sub").mkdir(parents=True)
    assert count_folders(tmp_path, 1000, deadline=float("inf")) == 61
    assert count_folders(tmp_path, 10, deadline=float("inf")) == 11


def test_clock_skew_levels() -> None:
    assert _check_skew("s3", 1000.0, 1010.0).level == "ok"
    assert _check_skew("s3", 1000.0, 1100.0).level == "warn"
    assert _check_skew("s3", 1000.0, 3000.0).level == "fail"
    assert "ahead of" in _check_skew("s3", 1000.0, 3000.0).detail


def test_the_guard_stays_on_across_polling_gaps() -> None:
    import threading

    now = [0.0]
    guard = AcquisitionGuard(
        GuardSettings(active_seconds=5), stop=threading.Event(), clock=lambda: now[0], min_active_seconds=20
    )
    guard.growth_seen("/share/run/stack.tif")
    now[0] = 19.0
    assert guard.active
    now[0] = 20.5
    assert not guard.active


def test_http_dates_parse_and_malformed_ones_are_none() -> None:
    from agent.destinations.http import http_date

    assert http_date("Sun, 22 Nov 2026 07:00:00 GMT") == 1795330800.0
    assert http_date("not a date") is None
    assert http_date(None) is None


def test_doctor_checks_the_metrics_credential_and_tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli.doctor import _check_metrics

    monkeypatch.delenv("HARVEST_CREDENTIAL_SCRAPE_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setattr(credentials, "_keyring_get", lambda name: None)
    metrics = {"listen": "0.0.0.0:9464", "allow_remote": True, "credential": "scrape-token"}
    (tmp_path / "instrument").mkdir()
    missing = list(_check_metrics(load_config(write_config(tmp_path, metrics=metrics))))
    assert [check.level for check in missing] == ["fail"] and "scrape-token" in missing[0].detail
    monkeypatch.setenv("HARVEST_CREDENTIAL_SCRAPE_TOKEN", "a-long-scrape-token")
    present = list(_check_metrics(load_config(write_config(tmp_path, metrics=metrics))))
    assert [check.level for check in present] == ["ok"] and "bearer token" in present[0].detail
    broken = metrics | {"tls": {"certificate": "absent.crt", "key": "absent.key"}}
    unusable = list(_check_metrics(load_config(write_config(tmp_path, metrics=broken))))
    assert [check.level for check in unusable] == ["fail"] and "TLS" in unusable[0].detail

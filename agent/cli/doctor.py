"""``harvest doctor``: everything that must hold for the agent to work, each with a fix.

Checks never change the instrument's data; at each destination a small probe object
is written, read back and deleted. A failed check exits non-zero; a warning does not.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.config import AgentConfig, ConfigInvalid, load_config
from agent.config.models import FilesystemDestination, WatchRule
from agent.destinations import build_transports
from agent.errors import AuthError, HarvestError, ItemError, TransientError
from agent.package.names import encode_component
from agent.secrets import credentials

Level = Literal["ok", "warn", "fail"]
FREE_FAIL_BYTES = 100 << 20
FREE_WARN_BYTES = 1 << 30
SKEW_WARN_SECONDS = 60.0
SKEW_FAIL_SECONDS = 900.0  # S3 signatures are refused beyond 15 minutes
NETWORK_FILESYSTEMS = frozenset(
    {"cifs", "smb3", "smbfs", "nfs", "nfs4", "fuse.sshfs", "9p", "afs", "ceph", "fuse.rclone", "davfs", "fuse.davfs"}
)
INOTIFY_COUNT_SECONDS = 20.0


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    hint: str = ""


def run_checks(config_path: Path) -> list[Check]:
    try:
        config = load_config(config_path)
    except ConfigInvalid as error:
        detail = "; ".join(str(problem) for problem in error.problems)
        return [Check("config", "fail", detail, f"fix the file, then `harvest config check {config_path}`")]
    except HarvestError as error:
        return [Check("config", "fail", str(error), "give the config with --config or $HARVEST_CONFIG")]
    checks = [Check("config", "ok", f"{config_path} is valid (instrument {config.instrument.id})")]
    for rule in config.watch:
        checks.append(_check_root(rule))
        checks.extend(_check_network_filesystem(rule))
    checks.append(_check_state_dir(config.state_dir))
    checks.extend(_check_destinations(config))
    checks.extend(_check_keyring(config))
    checks.extend(_check_inotify(config))
    checks.extend(_check_metrics(config))
    return checks


def _check_metrics(config: AgentConfig) -> Iterator[Check]:
    """The endpoint's credential resolves and its certificate and key load (the port itself binds at run)."""
    settings = config.metrics
    if settings is None:
        return
    from agent.observe.metrics_server import tls_context

    name = f"metrics {settings.listen}"
    try:
        if settings.credential:
            credentials.resolve(settings.credential)
        tls_context(settings)
    except HarvestError as error:
        hint = _where_to_put(settings.credential or "") if isinstance(error, credentials.CredentialMissing) else ""
        yield Check(name, "fail", str(error), hint or "see the message")
        return
    except (OSError, ValueError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        yield Check(name, "fail", f"TLS certificate or key unusable: {detail}", "check metrics.tls paths and modes")
        return
    exposure = (
        "loopback only"
        if not settings.allow_remote
        else "network, "
        + " and ".join(
            part
            for part, present in (
                ("bearer token", settings.credential),
                ("mutual TLS", settings.tls and settings.tls.client_ca),
                ("TLS", settings.tls and not settings.tls.client_ca),
            )
            if present
        )
    )
    yield Check(name, "ok", f"{exposure}; /status detail: {settings.status_detail}")


def _check_root(rule: WatchRule) -> Check:
    name = f"watched root {rule.path}"
    try:
        with os.scandir(rule.path) as entries:
            next(entries, None)
    except FileNotFoundError:
        return Check(name, "fail", "does not exist", "create it, fix `watch[].path`, or mount the share")
    except NotADirectoryError:
        return Check(name, "fail", "is not a folder", "point `watch[].path` at the instrument's output folder")
    except PermissionError:
        return Check(
            name, "fail", "cannot be read by this user", "grant the agent's user read access (and traverse on parents)"
        )
    except OSError as error:
        return Check(name, "fail", f"cannot be listed: {error.strerror or error}", "check the disk or share")
    return Check(name, "ok", "exists and is readable")


def _check_state_dir(state_dir: Path) -> Check:
    """Writable with room to spare; a check never creates it (it would belong to whoever ran doctor)."""
    name = f"state dir {state_dir}"
    if not state_dir.exists():
        parent = next((folder for folder in state_dir.parents if folder.exists()), Path(state_dir.anchor))
        if not os.access(parent, os.W_OK | os.X_OK):
            return Check(
                name,
                "warn",
                f"does not exist yet, and {parent} is not writable by this user",
                "the systemd unit's StateDirectory= creates it for the service; otherwise create it for the"
                " agent's user",
            )
        free = shutil.disk_usage(parent).free
        detail = f"does not exist yet; the agent creates it ({parent} is writable, {free / (1 << 30):.1f} GiB free)"
        return _with_free_space(name, detail, free)
    try:
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-") as probe:
            probe.write(b"probe")
            probe.flush()
            os.fsync(probe.fileno())
        free = shutil.disk_usage(state_dir).free
    except OSError as error:
        return Check(name, "fail", f"not writable: {error.strerror or error}", "give the agent's user write access")
    return _with_free_space(name, f"writable, {free / (1 << 30):.1f} GiB free", free)


def _with_free_space(name: str, detail: str, free: int) -> Check:
    if free < FREE_FAIL_BYTES:
        return Check(name, "fail", detail, "free disk space: the journal needs room to record progress")
    if free < FREE_WARN_BYTES:
        return Check(name, "warn", detail, "less than 1 GiB free: clean up the disk")
    return Check(name, "ok", detail)


def _check_destinations(config: AgentConfig) -> Iterator[Check]:
    try:
        transports = build_transports(config)
    except HarvestError as error:
        yield Check("destinations", "fail", str(error), "fix the destination settings")
        return
    scope = encode_component(config.instrument.id)
    for transport, settings in zip(transports, config.destinations, strict=True):
        name = f"destination {transport.name}"
        started = time.time()
        try:
            result = transport.self_test(scope)
        except credentials.CredentialMissing as error:
            yield Check(name, "fail", str(error), _where_to_put(str(getattr(settings, "credential", ""))))
            continue
        except AuthError as error:
            credential = getattr(settings, "credential", None)
            hint = f"store the right secret: `harvest login {credential}`" if credential else "configure a credential"
            yield Check(name, "fail", f"credentials not accepted: {error}", hint)
            continue
        except TransientError as error:
            if isinstance(settings, FilesystemDestination):
                hint = "mount the share or create the folder (the agent never creates a destination's root)"
            else:
                hint = "check the address, the network or VPN, and the firewall"
            yield Check(name, "fail", f"unreachable: {error}", hint)
            continue
        except ItemError as error:
            yield Check(name, "fail", f"probe failed: {error}", "check the agent's permissions at the destination")
            continue
        except HarvestError as error:  # e.g. the keyring could not be read
            yield Check(name, "fail", str(error), "see the message; `harvest login` or the credential's source")
            continue
        finally:
            close = getattr(transport, "close", None)
            if callable(close):
                close()
        elapsed = time.time() - started
        yield Check(name, "ok", f"{result.detail} ({elapsed * 1000:.0f} ms)")
        if result.server_time is not None:
            yield _check_skew(transport.name, result.server_time, (started + time.time()) / 2)


def _check_skew(destination: str, server_time: float, local_time: float) -> Check:
    skew = local_time - server_time
    name = f"clock vs {destination}"
    detail = f"this PC is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the server"
    hint = "enable time synchronisation (NTP: systemd-timesyncd, chrony, or Windows Time)"
    if abs(skew) > SKEW_FAIL_SECONDS:
        return Check(name, "fail", detail, hint)
    if abs(skew) > SKEW_WARN_SECONDS:
        return Check(name, "warn", detail, hint)
    return Check(name, "ok", detail)


def _keyring_backend() -> str | None:
    """The usable keyring backend's name, or None (a real read is the test)."""
    try:
        import keyring

        backend = keyring.get_keyring()
        backend.get_password(credentials.KEYRING_SERVICE, "harvest-doctor-probe")
    except Exception:  # noqa: BLE001 - a missing or broken keyring is a finding, not a crash
        return None
    return type(backend).__module__ + "." + type(backend).__name__


def _credential_names(config: AgentConfig) -> list[str]:
    names = [name for d in config.destinations if (name := getattr(d, "credential", None))]
    if config.metrics is not None and config.metrics.credential:
        names.append(config.metrics.credential)
    return names


def _from_keyring(names: list[str]) -> list[str]:
    """The credentials that neither the environment nor systemd provides: the keyring's to give."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    return [
        name
        for name in names
        if not os.environ.get(credentials.environment_variable(name))
        and not (directory and (Path(directory) / name).is_file())
    ]


def _where_to_put(name: str) -> str:
    if _keyring_backend() is not None:
        return f"`harvest login {name}` (OS keyring), ${credentials.environment_variable(name)}, or LoadCredential="
    return (
        f"no OS keyring here: give it as ${credentials.environment_variable(name)} or as a systemd credential"
        f" (LoadCredential={name}:/path)"
    )


def _check_keyring(config: AgentConfig) -> Iterator[Check]:
    """Only where the config needs the keyring; a credential missing is its destination's line, not two."""
    if not _from_keyring(_credential_names(config)):
        return
    backend = _keyring_backend()
    if backend is not None:
        yield Check("keyring", "ok", f"backend {backend}")


def _mounts() -> list[tuple[str, str]]:
    try:
        text = Path("/proc/mounts").read_text()
    except OSError:
        return []
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((fields[1].replace("\\040", " "), fields[2]))
    return mounts


def filesystem_type(path: Path, mounts: list[tuple[str, str]]) -> str | None:
    """The type of the filesystem holding *path* (longest mount-point prefix)."""
    resolved = str(path.resolve())
    best: tuple[int, str] | None = None
    for mount_point, kind in mounts:
        prefix = mount_point.rstrip("/") + "/"
        if (resolved + "/").startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), kind)
    return best[1] if best else None


def _windows_remote(path: Path) -> bool:
    text = str(path)
    if text.startswith("\\\\"):
        return True
    import ctypes

    drive = text[:2] + "\\"
    windll = getattr(ctypes, "windll", None)
    return bool(windll and windll.kernel32.GetDriveTypeW(drive) == 4)  # DRIVE_REMOTE


def _check_network_filesystem(rule: WatchRule) -> Iterator[Check]:
    name = f"events for {rule.path}"
    if sys.platform == "win32":
        remote, kind = _windows_remote(rule.path), "network drive"
    else:
        fs_type = filesystem_type(rule.path, _mounts())
        remote, kind = fs_type in NETWORK_FILESYSTEMS, fs_type or "unknown"
    if not remote:
        return
    if rule.polling:
        yield Check(name, "ok", f"on a {kind}; polling is on")
    else:
        yield Check(
            name,
            "warn",
            f"on a {kind}, where change events from other machines are not delivered",
            "set `polling: true` for this root",
        )


def count_folders(root: Path, limit: int, deadline: float, clock: Callable[[], float] = time.monotonic) -> int:
    """Folders under *root*, counting stops past *limit* or the deadline."""
    count = 0
    stack = [str(root)]
    while stack and count <= limit and clock() < deadline:
        folder = stack.pop()
        count += 1
        try:
            with os.scandir(folder) as entries:
                stack.extend(entry.path for entry in entries if entry.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return count


def _check_inotify(config: AgentConfig) -> Iterator[Check]:
    if not sys.platform.startswith("linux"):
        return
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + INOTIFY_COUNT_SECONDS
    folders = sum(count_folders(rule.path, limit, deadline) for rule in config.watch if not rule.polling)
    hint = "raise it: echo fs.inotify.max_user_watches=1048576 > /etc/sysctl.d/90-harvest.conf; sysctl --system"
    detail = f"{folders} folder(s) to watch, limit {limit}"
    if folders > limit:
        yield Check("inotify watches", "fail", detail, hint)
    elif folders > limit // 2:
        yield Check("inotify watches", "warn", detail + " (other programs need watches too)", hint)
    else:
        yield Check("inotify watches", "ok", detail)


MARKS = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]"}


def render_checks(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{MARKS[check.level]} {check.name}: {check.detail}")
        if check.hint and check.level != "ok":
            lines.append(f"       fix: {check.hint}")
    failed = sum(check.level == "fail" for check in checks)
    warned = sum(check.level == "warn" for check in checks)
    lines.append(f"{len(checks)} checks: {failed} failed, {warned} warning(s)")
    return "\n".join(lines)

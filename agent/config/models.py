"""Typed, validated configuration models (one YAML file per instrument).

Every model forbids unknown keys so that a misspelt option is an error, never a
silently ignored setting. Values here are plain and frozen; nothing in this module
touches the filesystem.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

# Re-exported: one import for every model and pattern.
from agent.config.base import (
    INSTRUMENT_ID_PATTERN as INSTRUMENT_ID_PATTERN,
)
from agent.config.base import (
    LISTEN_PATTERN as LISTEN_PATTERN,
)
from agent.config.base import (
    NAME_PATTERN as NAME_PATTERN,
)
from agent.config.base import (
    ORIGIN_PATTERN as ORIGIN_PATTERN,
)
from agent.config.base import (
    PATTERN_MEANINGS as PATTERN_MEANINGS,
)
from agent.config.base import (
    URL_PATTERN as URL_PATTERN,
)
from agent.config.base import (
    StrictModel as StrictModel,
)
from agent.config.destinations import (
    Destination as Destination,
)
from agent.config.destinations import (
    FilesystemDestination as FilesystemDestination,
)
from agent.config.destinations import (
    S3Destination as S3Destination,
)
from agent.config.destinations import (
    SftpDestination as SftpDestination,
)
from agent.config.destinations import (
    TusDestination as TusDestination,
)
from agent.rules.bandwidth import parse_rate
from agent.rules.templates import DatasetTemplate


@functools.lru_cache(maxsize=64)
def _template(text: str) -> DatasetTemplate:
    """A parsed dataset template (asked for every file placed; parsed once per text)."""
    return DatasetTemplate(text)


class Instrument(StrictModel):
    """Who produced the data: the identity attached to every dataset."""

    id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            pattern=INSTRUMENT_ID_PATTERN,
            description="stable instrument id (facility inventory id or PIDINST handle); names the archive folder",
        ),
    ]
    name: str | None = Field(default=None, description="human-readable name, e.g. room and instrument")
    manufacturer: str | None = Field(default=None, description="instrument manufacturer")
    model: str | None = Field(default=None, description="instrument model")
    serial_number: str | None = Field(default=None, description="serial number (quote it in YAML)")
    facility: str | None = Field(default=None, description="facility name (BagIt Source-Organization)")
    pidinst: str | None = Field(default=None, description="PIDINST persistent identifier (URL or handle)")


class WatchRule(StrictModel):
    """One watched root and how its files group into datasets."""

    path: Path = Field(description="the instrument's output folder (read-only for the agent)")
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(
        default=None,
        description="required when there are several watched roots: a folder level in the archive"
        " (<instrument>/<name>/<dataset>) that keeps their datasets apart",
    )
    dataset: str = Field(
        default="{dataset}",
        description="folders that form one dataset, relative to the root: '{operator}/{session}';"
        " {field} parts become dataset fields, * matches within one folder name",
    )
    exclude: list[str] = Field(
        default_factory=list, description="globs on the relative path never to harvest ('**/*.bak', 'scratch')"
    )
    include: list[str] = Field(default_factory=list, description="if set, only files matching one of these globs")
    polling: bool = Field(default=False, description="poll instead of OS events: use for SMB/NFS shares")
    polling_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="seconds between polls when polling is on"
    )
    follow_symlinks: bool = Field(default=False, description="follow symbolic links (only to targets inside this root)")
    malformed: Literal["harvest", "quarantine"] = Field(
        default="harvest",
        description="a file whose format parser rejects it, or that is still truncated after its grace, is"
        " harvested with a warning (never as complete), or quarantined: kept on the instrument and listed"
        " as missing in its dataset",
    )
    truncated_grace_seconds: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="this root's own settle.truncated_grace_seconds (e.g. longer for a slow tiled scanner)",
    )
    group_by: Literal["folder", "dicom-series", "dicom-study"] = Field(
        default="folder",
        description="'folder' uses the dataset template; 'dicom-series'/'dicom-study' group DICOM files by"
        " SeriesInstanceUID/StudyInstanceUID wherever they are (other files still use the template)",
    )
    destinations: list[str] | None = Field(
        default=None, description="destination names for this root; all when omitted"
    )

    @field_validator("dataset")
    @classmethod
    def _template_parses(cls, value: str) -> str:
        DatasetTemplate(value)  # raises ValueError with a precise reason
        return value

    @property
    def template(self) -> DatasetTemplate:
        return _template(self.dataset)


class Settle(StrictModel):
    """When a file, and then a dataset, counts as complete."""

    quiet_seconds: Annotated[float, Field(ge=0)] = Field(
        default=30.0, description="a file must be unchanged this long (local monotonic clock) to be harvested"
    )
    dataset_idle_seconds: Annotated[float, Field(ge=0)] = Field(
        default=300.0, description="a dataset closes after this long with no member appearing or changing"
    )
    dataset_max_open_seconds: Annotated[float, Field(gt=0)] = Field(
        default=86400.0, description="a dataset open this long is closed by force (with a warning)"
    )
    marker: str | None = Field(
        default=None, description="file name whose arrival closes its dataset, e.g. acquisition.done"
    )
    truncated_grace_seconds: Annotated[float, Field(ge=0)] = Field(
        default=600.0,
        description="a file that stopped changing but lacks bytes, planes or blocks its headers declare keeps"
        " waiting this long (the writer may be paused); then the rule's malformed policy handles it",
    )
    close_on_declared: bool = Field(
        default=True,
        description="close a dataset as soon as everything its files declare (fileset, series size, planes,"
        " chunks) is present, settled and whole, without waiting for dataset_idle_seconds",
    )

    @field_validator("marker")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or "\\" in value):
            raise ValueError("marker must be a plain file name, without folders")
        return value


class Scan(StrictModel):
    """How often the watched roots are fully re-scanned (events can be missed)."""

    interval_seconds: Annotated[float, Field(gt=0)] = Field(
        default=600.0,
        description="seconds between reconcile scans (longer where one costs over 0.25 % of a core on average)",
    )


class Logging(StrictModel):
    """Log output (never secrets or patient data)."""

    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="log level")
    format: Literal["text", "json"] = Field(default="text", description="text lines or JSON lines")
    file: Path | Literal["auto"] | None = Field(
        default="auto",
        description="also write a rotating log file here; 'auto': <state_dir>/logs/harvest.log where no"
        " journald collects stderr (Windows), none on Linux; null: stderr only",
    )
    max_bytes: Annotated[int, Field(ge=64 << 10)] = Field(default=10 << 20, description="rotate the file at this size")
    backups: Annotated[int, Field(ge=0, le=100)] = Field(default=5, description="rotated files kept")


class GuardSettings(StrictModel):
    """Throttle uploads while an acquisition is writing, so the instrument never stalls."""

    enabled: bool = Field(default=True, description="watch for growing files and throttle uploads meanwhile")
    bandwidth: str = Field(
        default="10MiB/s",
        description="total upload rate (every destination together) while an acquisition runs;"
        " by default about a twelfth of a 1 Gbit/s link (see bench/bench_guard.py)",
    )
    active_seconds: Annotated[float, Field(gt=0)] = Field(
        default=15.0, description="the guard stays on this long after the last growth seen"
    )

    @field_validator("bandwidth")
    @classmethod
    def _rate_parses(cls, value: str) -> str:
        if parse_rate(value) is None:
            raise ValueError("the guard needs a rate; to turn it off use enabled: false")
        return value


LOOPBACK_HOSTS = frozenset({"", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    """Whether *host* (as written in ``listen``) names this machine's loopback interface only."""
    return host in LOOPBACK_HOSTS or re.fullmatch(r"127(\.\d{1,3}){3}", host) is not None


class MetricsTls(StrictModel):
    """HTTPS for the metrics endpoint; with ``client_ca``, mutual TLS."""

    certificate: Path = Field(description="the endpoint's certificate chain (PEM)")
    key: Path = Field(description="its private key (PEM, readable by the service user only)")
    client_ca: Path | None = Field(
        default=None,
        description="CA bundle (PEM) that scrapers' client certificates must chain to; set, it makes TLS mutual",
    )


class Metrics(StrictModel):
    """Prometheus metrics and the status JSON over HTTP (off unless configured)."""

    listen: Annotated[str, Field(pattern=LISTEN_PATTERN)] = Field(
        description="host:port to serve /metrics and /status on, e.g. '127.0.0.1:9464'; no host means loopback"
    )
    allow_remote: bool = Field(
        default=False,
        description="must be true to listen on anything but loopback; then a credential or tls.client_ca is required",
    )
    credential: str | None = Field(
        default=None,
        description="name of a bearer token scrapers must send (Authorization: Bearer ...), resolved like"
        " destination credentials",
    )
    tls: MetricsTls | None = Field(default=None, description="serve HTTPS (and with client_ca, require client certs)")
    status_detail: Literal["summary", "full"] = Field(
        default="summary",
        description="'summary': /status gives health, counts and destinations but no dataset keys, fields or"
        " file paths; 'full': the whole harvest status --json report",
    )
    max_connections: Annotated[int, Field(ge=1, le=256)] = Field(
        default=16, description="connections served at once; more are closed at once"
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="the longest one request may take to arrive and be answered"
    )

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @model_validator(mode="after")
    def _remote_needs_consent_and_credentials(self) -> Metrics:
        if is_loopback(self.host):
            return self
        if not self.allow_remote:
            raise ValueError(
                f"metrics.listen {self.listen!r} is reachable from the network: use 127.0.0.1, or set"
                " metrics.allow_remote: true with a credential (bearer token) or tls.client_ca"
            )
        if self.credential is None and (self.tls is None or self.tls.client_ca is None):
            raise ValueError(
                "metrics.allow_remote needs metrics.credential (a bearer token) or metrics.tls.client_ca (mutual TLS)"
            )
        return self


class Process(StrictModel):
    """How the agent shares the PC with the acquisition software."""

    priority: Literal["low", "normal"] = Field(
        default="low",
        description="'low' lowers the agent's CPU and I/O priority (nice 10 and lowest best-effort I/O;"
        " below normal on Windows)",
    )


class ControlChannelSettings(StrictModel):
    """The local control channel used by harvest pause/resume/retry/rescan."""

    enabled: bool = Field(default=True, description="listen on <state_dir>/control.sock (a named pipe on Windows)")
    group: str | None = Field(
        default=None,
        description="group allowed to use the channel (socket mode 0660); default: the agent's own group",
    )


class AgentConfig(StrictModel):
    """The whole configuration of one instrument's agent."""

    version: Literal[1] = Field(description="config format version")
    instrument: Instrument = Field(description="the instrument's identity")
    state_dir: Path = Field(description="where the journal lives (writable, local disk)")
    watch: Annotated[list[WatchRule], Field(min_length=1, description="watched roots")]
    settle: Settle = Field(default_factory=Settle, description="completeness rules")
    scan: Scan = Field(default_factory=Scan, description="reconcile scans")
    destinations: Annotated[list[Destination], Field(min_length=1, description="where datasets are archived")]
    logging: Logging = Field(default_factory=Logging, description="logging to stderr and optionally a file")
    acquisition_guard: GuardSettings = Field(
        default_factory=GuardSettings, description="upload throttling while an acquisition is running"
    )
    metrics: Metrics | None = Field(default=None, description="HTTP endpoint for Prometheus (off by default)")
    process: Process = Field(default_factory=Process, description="process priority")
    control: ControlChannelSettings = Field(default_factory=ControlChannelSettings, description="local control channel")

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentConfig:
        names = [destination.name for destination in self.destinations]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"destination names must be unique; repeated: {', '.join(duplicates)}")
        for rule in self.watch:
            for wanted in rule.destinations or []:
                if wanted not in names:
                    raise ValueError(
                        f"watch rule for {rule.path} names unknown destination {wanted!r} (known: {', '.join(names)})"
                    )
        roots = [rule.path for rule in self.watch]
        for index, root in enumerate(roots):
            for other in roots[index + 1 :]:
                if root == other or root in other.parents or other in root.parents:
                    raise ValueError(f"watched roots must not overlap: {root} and {other}")
        if len(self.watch) > 1:
            rule_names = [rule.name for rule in self.watch]
            folded = {unicodedata.normalize("NFC", name).casefold() for name in rule_names if name is not None}
            if None in rule_names or len(folded) != len(rule_names):
                raise ValueError(
                    "with several watched roots, give each a unique 'name' (it becomes a folder in the archive;"
                    " names that differ only in case are one folder on many archives)"
                )
        return self

    def destinations_for(self, rule: WatchRule) -> list[str]:
        names = [destination.name for destination in self.destinations]
        return names if rule.destinations is None else list(rule.destinations)


def safe_component(text: str) -> str:
    """Make *text* usable as one path component at any destination."""
    cleaned = re.sub(r"[\x00-\x1f/\\:*?\"<>|]", "_", text).strip(" .")
    return cleaned or "_"

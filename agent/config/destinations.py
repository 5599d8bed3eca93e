"""Configuration models of the destinations: a filesystem or share, tus, S3 and SFTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from agent.config.base import NAME_PATTERN, ORIGIN_PATTERN, URL_PATTERN, StrictModel
from agent.rules.timetable import Schedule, Timetable


class _RateLimited(StrictModel):
    bandwidth: str | None = Field(
        default=None,
        description="rate limit on the bytes written or sent: '20MiB/s', 'off', or a weekly timetable"
        " 'Mon-Fri 08:00-18:00 20MiB/s; off' (first matching rule wins; local time)",
    )
    max_transfers: Annotated[int, Field(ge=1, le=32)] | None = Field(
        default=None, description="most files in flight at once to this destination (default: the transport's own)"
    )
    upload_windows: str | None = Field(
        default=None,
        description="upload only inside these windows, e.g. 'Mon-Fri 19:00-07:00; Sat,Sun' (hashing and"
        " metadata extraction go on outside them); default: always",
    )

    @field_validator("bandwidth")
    @classmethod
    def _rate_parses(cls, value: str | None) -> str | None:
        if value is not None:
            Timetable(value)
        return value

    @field_validator("upload_windows")
    @classmethod
    def _windows_parse(cls, value: str | None) -> str | None:
        if value is not None:
            Schedule(value)
        return value

    @property
    def timetable(self) -> Timetable | None:
        return Timetable(self.bandwidth) if self.bandwidth else None

    @property
    def schedule(self) -> Schedule | None:
        return Schedule(self.upload_windows) if self.upload_windows else None


class FilesystemDestination(_RateLimited):
    """A local folder or a mounted archive share (SMB/NFS)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="name used in status and logs")]
    type: Literal["filesystem"]
    path: Path = Field(description="archive folder; must exist (an unmounted share pauses the destination)")
    checkpoint_bytes: Annotated[int, Field(ge=1 << 20)] = Field(
        default=64 << 20, description="a large copy is made durable and journalled every this many bytes"
    )
    file_mode: Annotated[int, Field(ge=0, le=0o777)] = Field(
        default=0o640,
        description="permissions of archived files (YAML: 0o640); never wider than the source file's own",
    )


class _NetworkDestination(_RateLimited):
    name: Annotated[str, Field(pattern=NAME_PATTERN, description="name used in status and logs")]
    credential: str | None = Field(
        default=None,
        description="name of the secret: $HARVEST_CREDENTIAL_<NAME>, $CREDENTIALS_DIRECTORY/<NAME>, or the"
        " OS keyring (harvest login NAME)",
    )
    timeout_seconds: Annotated[float, Field(gt=0)] = Field(default=60.0, description="network timeout")


class TusDestination(_NetworkDestination):
    """A tus 1.0 upload endpoint (resumable HTTP uploads)."""

    type: Literal["tus"]
    url: Annotated[str, Field(pattern=URL_PATTERN, description="the tus endpoint, e.g. https://host/files/")]
    ca_bundle: Path | None = Field(default=None, description="CA bundle for TLS verification (default: system)")
    chunk_bytes: Annotated[int, Field(ge=64 << 10)] = Field(
        default=64 << 20, description="bytes per PATCH request, streamed (each acknowledged chunk is a resume point)"
    )
    upload_hosts: list[Annotated[str, Field(pattern=ORIGIN_PATTERN)]] = Field(
        default_factory=list,
        description="other origins (scheme://host[:port]) the server may place uploads on; the credential is"
        " sent there too. By default only the url's own origin is trusted",
    )


class S3Destination(_NetworkDestination):
    """An S3-compatible object store (AWS, MinIO, Ceph, ...)."""

    type: Literal["s3"]
    endpoint_url: str | None = Field(default=None, description="endpoint for non-AWS stores")
    bucket: str = Field(description="bucket name")
    prefix: str = Field(default="", description="key prefix, e.g. 'lsm980/'")
    region: str | None = Field(default=None, description="region name")
    ca_bundle: Path | None = Field(default=None, description="CA bundle for TLS verification (default: system)")
    part_bytes: Annotated[int, Field(ge=5 << 20)] = Field(
        default=16 << 20, description="multipart part size; smaller files are sent with one PUT"
    )
    concurrency: Annotated[int, Field(ge=1, le=32)] = Field(
        default=4,
        description="parts of one file, or small files, in flight at once (memory: concurrency x part_bytes)",
    )


class SftpDestination(_NetworkDestination):
    """An SFTP server."""

    type: Literal["sftp"]
    host: str = Field(description="server host name")
    port: Annotated[int, Field(gt=0, lt=65536)] = 22
    username: str = Field(description="login name")
    path: str = Field(description="remote folder that receives the bags")
    known_hosts: Path | None = Field(
        default=None, description="known_hosts file; default: trust on first use, remembered in state_dir"
    )


Destination = Annotated[
    FilesystemDestination | TusDestination | S3Destination | SftpDestination, Field(discriminator="type")
]

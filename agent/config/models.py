"""Typed, validated configuration models (one YAML file per instrument).

Every model forbids unknown keys so that a misspelt option is an error, never a
silently ignored setting. Values here are plain and frozen; nothing in this module
touches the filesystem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.bandwidth import parse_rate
from agent.templates import DatasetTemplate

INSTRUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Instrument(StrictModel):
    """Who produced the data: the identity attached to every dataset."""

    id: Annotated[str, Field(min_length=1, max_length=200, pattern=INSTRUMENT_ID_PATTERN)]
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    facility: str | None = None
    pidinst: str | None = Field(default=None, description="PIDINST persistent identifier (URL or handle)")


class WatchRule(StrictModel):
    """One watched root and how its files group into datasets."""

    path: Path
    dataset: str = Field(default="{dataset}", description="template relative to the root")
    exclude: list[str] = Field(default_factory=list)
    include: list[str] = Field(default_factory=list, description="if set, only matching files")
    polling: bool = False
    polling_interval_seconds: Annotated[float, Field(gt=0)] = 10.0
    follow_symlinks: bool = False
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
        return DatasetTemplate(self.dataset)


class Settle(StrictModel):
    """When a file, and then a dataset, counts as complete."""

    quiet_seconds: Annotated[float, Field(ge=0)] = 30.0
    dataset_idle_seconds: Annotated[float, Field(ge=0)] = 300.0
    dataset_max_open_seconds: Annotated[float, Field(gt=0)] = 86400.0
    marker: str | None = Field(
        default=None, description="file name whose arrival closes its dataset, e.g. acquisition.done"
    )

    @field_validator("marker")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or "\\" in value):
            raise ValueError("marker must be a plain file name, without folders")
        return value


class Scan(StrictModel):
    interval_seconds: Annotated[float, Field(gt=0)] = 600.0


class FilesystemDestination(StrictModel):
    """A local folder or a mounted archive share (SMB/NFS)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    type: Literal["filesystem"]
    path: Path
    checkpoint_bytes: Annotated[int, Field(ge=1 << 20)] = 64 << 20
    bandwidth: str | None = Field(default=None, description="rate limit such as '20MiB/s', or 'off'")

    @field_validator("bandwidth")
    @classmethod
    def _rate_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value


Destination = Annotated[FilesystemDestination, Field(discriminator="type")]


class Logging(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class AgentConfig(StrictModel):
    """The whole configuration of one instrument's agent."""

    version: Literal[1]
    instrument: Instrument
    state_dir: Path
    watch: Annotated[list[WatchRule], Field(min_length=1)]
    settle: Settle = Field(default_factory=Settle)
    scan: Scan = Field(default_factory=Scan)
    destinations: Annotated[list[Destination], Field(min_length=1)]
    logging: Logging = Field(default_factory=Logging)

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
        return self

    def destinations_for(self, rule: WatchRule) -> list[str]:
        names = [destination.name for destination in self.destinations]
        return names if rule.destinations is None else list(rule.destinations)


def safe_component(text: str) -> str:
    """Make *text* usable as one path component at any destination."""
    cleaned = re.sub(r"[\x00-\x1f/\\:*?\"<>|]", "_", text).strip(" .")
    return cleaned or "_"

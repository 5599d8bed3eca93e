"""The agent's error hierarchy: every expected failure is one of these.

Each class carries its user-facing text and, for fatal errors, the process exit code.
OS and library errors are translated into these once, at each boundary (reading a
source file, writing to a destination, loading the config); code above a boundary
decides what to do by exception *type*, never by matching message text.

    HarvestError
    ├── ItemError            one file or dataset failed: record it, show it, move on
    │   ├── SourceChangedError   the file changed while it was read: re-queue, never upload a mix
    │   └── SourceVanishedError  the file disappeared before or while it was read
    ├── TransientError       the destination is temporarily unusable: retry with backoff, then pause
    ├── AuthError            the destination rejected the credentials: pause, tell the operator
    ├── JournalWriteError    the journal cannot be written now (state dir full, read-only): wait, retry
    └── FatalError           the agent cannot run at all: stop with a one-line reason
        ├── ConfigError
        └── JournalError
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorKind(StrEnum):
    """What a recorded error is about: stored with it, counted by it (``harvest_failures_total``),
    and the fix shown beside it (``hint``)."""

    ITEM = "item"
    TRANSIENT = "transient"
    AUTH = "auth"
    WATCH = "watch"
    DATASET = "dataset"
    CONTROL = "control"
    METRICS = "metrics"
    INTERNAL = "internal"

    @property
    def hint(self) -> str:
        return _HINTS[self]


_HINTS = {
    ErrorKind.AUTH: "the destination refused the credential: store the right one with `harvest login NAME`"
    " (or fix $HARVEST_CREDENTIAL_NAME), then `harvest retry`",
    ErrorKind.TRANSIENT: "the destination is unreachable, slow or full; the agent keeps retrying with backoff."
    " Check the network or share, and run `harvest doctor`",
    ErrorKind.ITEM: "this file could not be read or sent; fix the cause, then `harvest retry PATH`",
    ErrorKind.WATCH: "check that the watched folder exists and the agent may read it; run `harvest doctor`",
    ErrorKind.DATASET: "archived with a warning, recorded in its harvest.json; a late file makes a new revision",
    ErrorKind.CONTROL: "the control channel could not start; check permissions on the state dir",
    ErrorKind.METRICS: "the metrics port is taken or not allowed; change metrics.listen",
    ErrorKind.INTERNAL: "",
}


class StopRequested(Exception):
    """The agent is shutting down; long operations stop at the next safe point."""


class HarvestError(Exception):
    """Base class: ``str(error)`` is a complete, user-facing sentence."""

    exit_code = 1
    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL


class ItemError(HarvestError):
    """A single item (file, dataset) cannot be processed; others are unaffected."""

    kind = ErrorKind.ITEM


class SourceChangedError(ItemError):
    """The source file's identity changed while it was being read."""


class SourceVanishedError(ItemError):
    """The source file no longer exists."""


class TransientError(HarvestError):
    """A destination is temporarily unavailable (unmounted share, disk full, network down)."""

    kind = ErrorKind.TRANSIENT


class AuthError(HarvestError):
    """A destination rejected the agent's credentials."""

    kind = ErrorKind.AUTH


class JournalWriteError(HarvestError):
    """The journal cannot be written right now (state dir full or read-only); nothing is lost."""


class FatalError(HarvestError):
    """The agent cannot continue; the message says why in one line."""

    exit_code = 2


class ConfigError(FatalError):
    """The configuration file is missing or invalid."""


class JournalError(FatalError):
    """The journal database cannot be opened or is from a newer agent."""

"""What every configuration model shares: strictness, and the patterns names must match."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

INSTRUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
URL_PATTERN = r"^https?://"
ORIGIN_PATTERN = r"^https?://[^/]+$"
LISTEN_PATTERN = r"^[^\s:]*:\d{1,5}$"

# What each pattern means, for a person reading a config error.
PATTERN_MEANINGS = {
    INSTRUMENT_ID_PATTERN: "must start with a letter or digit and hold only letters, digits and . _ : / -",
    NAME_PATTERN: "must start with a letter or digit and hold only letters, digits and _ . -",
    URL_PATTERN: "must start with http:// or https://",
    ORIGIN_PATTERN: "must be scheme://host[:port] with no path, e.g. https://uploads.example.org",
    LISTEN_PATTERN: "must be host:port, e.g. 127.0.0.1:9464",
}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

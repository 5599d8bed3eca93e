"""Small, forgiving conversions shared by the vendor readers: header text to numbers,
dates to ISO 8601, XML parsed without entities or network, bounded reads."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from lxml import etree

MAX_TEXT = 200  # a value longer than this is not a name, a model or a setting
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def number(value: object) -> float | None:
    """A finite float from a header value (``"0.8"``, ``b"1E-06"``, ``20``), else ``None``."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        value = value.strip().rstrip("\x00")
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return float(f"{result:.12g}") if math.isfinite(result) else None  # 488.00000000000006 -> 488.0


def integer(value: object) -> int | None:
    result = number(value)
    return None if result is None or result != int(result) else int(result)


def positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else float(f"{value * factor:.12g}")


def text(value: object) -> str | None:
    """A short printable string from a header value; empty, overlong or binary gives ``None``."""
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = " ".join(_CONTROL.sub(" ", value).split())
    return cleaned if cleaned and len(cleaned) <= MAX_TEXT else None


def iso_date(value: object) -> str | None:
    """ISO 8601 from an ISO string, a POSIX timestamp or a few vendor spellings; else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 < value < 2**33:
            return datetime.fromtimestamp(value, UTC).isoformat()
        return None
    raw = text(value)
    if raw is None:
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%d-%b-%y  %H:%M:%S", "%d-%b-%y %H:%M:%S",
                    "%a %b %d %H:%M:%S %Y", "%d/%m/%Y %H:%M:%S", "%H:%M:%S %d %b %Y", "%Y%m%d"):  # fmt: skip
        try:
            return datetime.strptime(raw, pattern).isoformat()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(raw).isoformat()  # 3.11 takes ZEN's and EPU's 7-digit fractions and Z
    except ValueError:
        return None


def parse_xml(data: bytes | str) -> etree._Element:
    """Parse vendor XML without resolving entities or touching the network."""
    return etree.fromstring(data.encode("utf-8") if isinstance(data, str) else data, parser=_XML_PARSER)


def local_name(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""

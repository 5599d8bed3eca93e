"""Archive names: an injective, reversible mapping from source names to names any archive keeps.

Archives differ in what a name may be: Windows and SMB refuse ``<>:"|?*``, control
characters, trailing dots and spaces and the reserved device names (``CON``, ``nul.txt``,
``COM1``, ...); macOS, Windows and many S3 gateways compare names without case; BagIt
validators read ``%XX`` in a manifest as an escape and strip trailing white space; a
file name from an SMB mount with the wrong charset is not even UTF-8. Replacing what is
unsafe by ``_`` merges ``10:30`` with ``10_30``. So this module *encodes* instead:

* each unsafe character becomes ``~XX`` per byte of its UTF-8 form (``:`` -> ``~3A``;
  a byte that was not UTF-8, carried by Python as a surrogate escape, keeps its value:
  Latin-1 ``é`` -> ``~E9``); ``~`` itself is always encoded, so decoding is exact;
* leading white space, trailing dots and trailing white space are encoded (``run1.`` -> ``run1~2E``), and so is the last
  letter of a reserved device name (``CON`` -> ``CO~4E``, ``nul.txt`` -> ``nu~6C.txt``);
* ``%`` is encoded where two hex digits follow it, so no BagIt reader can decode it.

:func:`encode_component` is a pure function of one name, hence injective. Names that
differ only in case or Unicode normalization are still one name on many archives: the
journal keeps, per folder, the names it handed out by their :func:`fold_key`, and gives
a later twin a distinct name with :func:`disambiguated` (``image~~2.tif``; ``~~`` never
appears in an encoded name). Every mapping is recorded, and ``harvest.json`` carries
the original name next to the archive name.
"""

from __future__ import annotations

import re
import unicodedata

ESCAPE = "~"
MAX_COMPONENT_BYTES = 255

_UNSAFE = frozenset('<>:"/\\|?*~') | frozenset(chr(code) for code in range(0x20)) | {"\x7f"}
_PERCENT_ESCAPE = re.compile(r"%(?=[0-9A-Fa-f]{2})")
_ENCODED = re.compile(r"~([0-9A-F]{2})")
_TWIN = re.compile(r"~~\d+")
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{device}{suffix}" for device in ("COM", "LPT") for suffix in [*"123456789", "¹", "²", "³"]]
)


class UnrepresentableName(ValueError):
    """A source name that no archive can hold, even encoded (for example too long)."""


def _escape(character: str) -> str:
    return "".join(f"~{byte:02X}" for byte in character.encode("utf-8", "surrogateescape"))


def _escape_char(character: str) -> str:
    if "\udc80" <= character <= "\udcff":  # a byte that was not UTF-8 (surrogate escape)
        return f"~{ord(character) - 0xDC00:02X}"
    if "\ud800" <= character <= "\udfff":  # an unpaired UTF-16 surrogate (Windows names)
        return "".join(f"~{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))
    return _escape(character)


def encode_component(name: str) -> str:
    """The archive form of one path component (a file or folder name)."""
    if not name:
        raise UnrepresentableName("an empty name cannot be archived")
    pieces = [_escape_char(char) if char in _UNSAFE or "\ud800" <= char <= "\udfff" else char for char in name]
    # Trailing dots and white space: Windows drops them, BagIt readers strip them.
    index = len(name)
    while index > 0 and (name[index - 1] == "." or name[index - 1].isspace()):
        index -= 1
        pieces[index] = _escape_char(name[index])
    # Leading white space too: some tools trim it, and it is invisible in a listing.
    start = 0
    while start < index and name[start].isspace():
        pieces[start] = _escape_char(name[start])
        start += 1
    encoded = _PERCENT_ESCAPE.sub("~25", "".join(pieces))
    stem = encoded.split(".", 1)[0]
    if stem.rstrip(" ").upper() in _RESERVED:
        encoded = stem[:-1] + _escape(stem[-1]) + encoded[len(stem) :]
    if len(encoded.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise UnrepresentableName(
            f"name is {len(encoded.encode('utf-8'))} bytes once made safe for archives (at most {MAX_COMPONENT_BYTES})"
        )
    return encoded


def decode_component(encoded: str) -> str:
    """The source name an archive name came from (the inverse of the mapping)."""
    plain = _TWIN.sub("", encoded)
    raw = bytearray()
    position = 0
    for found in _ENCODED.finditer(plain):
        raw += plain[position : found.start()].encode("utf-8")
        raw.append(int(found.group(1), 16))
        position = found.end()
    raw += plain[position:].encode("utf-8")
    return bytes(raw).decode("utf-8", "surrogateescape")


def fold_key(encoded: str) -> str:
    """Names that this key makes equal are one name on some archive (case, normalization)."""
    return unicodedata.normalize("NFC", encoded).casefold()


def disambiguated(encoded: str, number: int) -> str:
    """A distinct archive name for the *number*-th twin of *encoded* (``a.tif`` -> ``a~~2.tif``)."""
    head, dot, tail = encoded.partition(".")
    if not head:  # a dot file: ".hidden" -> ".hidden~~2"
        return f"{encoded}~~{number}"
    return f"{head}~~{number}{dot}{tail}"


def display(text: str) -> str:
    """*text* fit to print or store for people: bytes that were not UTF-8 shown as ``\\xNN``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

"""Unit conversion for physical sizes and wavelengths (OME units, TIFF resolution units)."""

from __future__ import annotations

_TO_MICROMETRE = {
    "ym": 1e-18, "zm": 1e-15, "am": 1e-12, "fm": 1e-9, "pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "um": 1.0,
    "mm": 1e3, "cm": 1e4, "dm": 1e5, "m": 1e6, "dam": 1e7, "hm": 1e8, "km": 1e9, "Mm": 1e12,
    "in": 25_400.0, "ft": 304_800.0, "yd": 914_400.0, "mi": 1_609_344_000.0, "pt": 25_400.0 / 72,
    "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0, "\\u00B5m": 1.0,
    "nanometer": 1e-3, "millimeter": 1e3, "centimeter": 1e4, "meter": 1e6, "inch": 25_400.0,
}  # fmt: skip


def to_micrometres(value: float | None, unit: str | None) -> float | None:
    """*value* in *unit* as micrometres; ``None`` if either is unknown."""
    if value is None:
        return None
    factor = _TO_MICROMETRE.get((unit or "µm").strip())
    return None if factor is None else float(value) * factor


def to_nanometres(value: float | None, unit: str | None) -> float | None:
    micrometres = to_micrometres(value, unit or "nm")
    return None if micrometres is None else micrometres * 1000.0

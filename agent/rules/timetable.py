"""Weekly timetables for bandwidth limits and upload windows.

A bandwidth timetable is a list of rules separated by ``;``, checked in order; the
first rule whose days and hours include the current local time gives the rate::

    "20MiB/s"                                   always 20 MiB/s
    "Mon-Fri 08:00-18:00 20MiB/s; off"          20 MiB/s in office hours, else unlimited
    "Mon-Fri 07:00-19:00 5MiB/s; Sat,Sun 50MiB/s; 100MiB/s"

A rule is ``[DAYS] [HH:MM-HH:MM] RATE``; without DAYS it applies every day, without
hours all day. Hours may wrap past midnight (``22:00-06:00``; the part after midnight
belongs to the day the window started). A time that no rule matches is unlimited.
An upload window uses the same rules without the rate: ``"Mon-Fri 19:00-07:00; Sat,Sun"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.rules.bandwidth import parse_rate

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Window:
    """Days of the week (0 = Monday) and minutes of the day [start, end); end < start wraps."""

    days: frozenset[int]
    start_minute: int = 0
    end_minute: int = 24 * 60

    def contains(self, moment: datetime) -> bool:
        minute = moment.hour * 60 + moment.minute
        weekday = moment.weekday()
        if self.start_minute < self.end_minute:
            return weekday in self.days and self.start_minute <= minute < self.end_minute
        # Wraps past midnight: the evening of a listed day or the morning after it.
        if weekday in self.days and minute >= self.start_minute:
            return True
        return (weekday - 1) % 7 in self.days and minute < self.end_minute


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first[:3] not in DAY_NAMES or (last and last[:3] not in DAY_NAMES):
            raise ValueError(f"not a day or day range: {part!r} (expected e.g. 'Mon-Fri' or 'Sat,Sun')")
        start = DAY_NAMES.index(first[:3])
        end = DAY_NAMES.index(last[:3]) if last else start
        index = start
        days.add(index)
        while index != end:
            index = (index + 1) % 7
            days.add(index)
    return frozenset(days)


def _parse_hours(text: str) -> tuple[int, int]:
    found = _HOURS.match(text)
    if found is None:
        raise ValueError(f"not an hour range: {text!r} (expected e.g. '08:00-18:00')")
    start_hour, start_minute, end_hour, end_minute = (int(group) for group in found.groups())
    if start_hour > 23 or end_hour > 24 or start_minute > 59 or end_minute > 59 or (end_hour == 24 and end_minute):
        raise ValueError(f"not an hour range: {text!r} (hours 00-24, minutes 00-59)")
    start, end = start_hour * 60 + start_minute, end_hour * 60 + end_minute
    if start == end:
        raise ValueError(f"empty hour range: {text!r}")
    return start, end


def _parse_window(words: Sequence[str], rule: str) -> Window:
    days = frozenset(range(7))
    hours = (0, 24 * 60)
    for word in words:
        if _HOURS.match(word):
            hours = _parse_hours(word)
        elif word[:1].isalpha():
            days = _parse_days(word)
        else:
            raise ValueError(f"in {rule!r}: {word!r} is neither days nor hours")
    return Window(days, *hours)


@dataclass(frozen=True)
class RateRule:
    window: Window
    rate: float | None  # bytes per second; None = unlimited


class Timetable:
    """A bandwidth timetable: the rate in force at a given local time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.rules: list[RateRule] = []
        for rule in (part.strip() for part in text.split(";")):
            if not rule:
                raise ValueError(f"empty rule in {text!r}")
            *window_words, rate_word = rule.split()
            self.rules.append(RateRule(_parse_window(window_words, rule), parse_rate(rate_word)))

    def rate_at(self, moment: datetime) -> float | None:
        for rule in self.rules:
            if rule.window.contains(moment):
                return rule.rate
        return None

    @property
    def constant(self) -> bool:
        return len(self.rules) == 1 and self.rules[0].window == Window(frozenset(range(7)))


class Schedule:
    """Upload windows: uploads run only while one of the windows is open."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.windows = [_parse_window(part.split(), part) for part in (p.strip() for p in text.split(";")) if part]
        if not self.windows:
            raise ValueError(f"no upload window in {text!r}")

    def is_open(self, moment: datetime) -> bool:
        return any(window.contains(moment) for window in self.windows)

    def next_opening(self, moment: datetime) -> datetime | None:
        """The next minute at which a window opens (within a week), or None if always open/never."""
        probe = moment.replace(second=0, microsecond=0)
        for _ in range(7 * 24 * 60):
            probe += timedelta(minutes=1)
            if self.is_open(probe):
                return probe
        return None

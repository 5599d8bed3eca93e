"""Bandwidth timetables and upload windows."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from agent.rules.bandwidth import RateLimiter
from agent.rules.timetable import Schedule, Timetable

MIB = 1 << 20
# 2026-11-23 is a Monday.
MONDAY_NOON = datetime(2026, 11, 23, 12, 0)
MONDAY_EVENING = datetime(2026, 11, 23, 19, 30)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0)


def test_a_plain_rate_applies_all_week() -> None:
    table = Timetable("10MiB/s")
    assert table.constant
    assert table.rate_at(MONDAY_NOON) == 10 * MIB
    assert table.rate_at(SATURDAY_NOON) == 10 * MIB


def test_office_hours_rule_then_default() -> None:
    table = Timetable("Mon-Fri 08:00-18:00 20MiB/s; off")
    assert not table.constant
    assert table.rate_at(MONDAY_NOON) == 20 * MIB
    assert table.rate_at(MONDAY_EVENING) is None
    assert table.rate_at(SATURDAY_NOON) is None
    assert table.rate_at(datetime(2026, 11, 23, 18, 0)) is None  # the end is exclusive
    assert table.rate_at(datetime(2026, 11, 23, 8, 0)) == 20 * MIB


def test_first_matching_rule_wins_and_day_lists_work() -> None:
    table = Timetable("Mon-Fri 07:00-19:00 5MiB/s; Sat,Sun 50MiB/s; 100MiB/s")
    assert table.rate_at(MONDAY_NOON) == 5 * MIB
    assert table.rate_at(SATURDAY_NOON) == 50 * MIB
    assert table.rate_at(MONDAY_EVENING) == 100 * MIB


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    table = Timetable("Fri 22:00-06:00 1MiB/s; off")
    assert table.rate_at(datetime(2026, 11, 27, 23, 0)) == MIB  # Friday night
    assert table.rate_at(datetime(2026, 11, 28, 5, 59)) == MIB  # Saturday morning
    assert table.rate_at(datetime(2026, 11, 28, 6, 0)) is None
    assert table.rate_at(datetime(2026, 11, 27, 5, 0)) is None  # Friday morning belongs to Thursday


def test_a_day_range_may_wrap_the_week() -> None:
    table = Timetable("Sat-Mon 1MiB/s; off")
    assert table.rate_at(SATURDAY_NOON) == MIB
    assert table.rate_at(MONDAY_NOON) == MIB
    assert table.rate_at(datetime(2026, 11, 24, 12, 0)) is None  # Tuesday


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mon-Fry 08:00-18:00 1MiB/s", "not a day"),
        ("Mon 8-18 1MiB/s", "neither days nor hours"),
        ("Mon 08:00-25:00 1MiB/s", "not an hour range"),
        ("Mon 08:00-08:00 1MiB/s", "empty hour range"),
        ("Mon 08:00-18:00 fast", "not a rate"),
        ("10MiB/s;", "empty rule"),
    ],
)
def test_bad_timetables_are_rejected_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Timetable(text)


def test_upload_windows() -> None:
    nights = Schedule("Mon-Fri 19:00-07:00; Sat,Sun")
    assert not nights.is_open(MONDAY_NOON)
    assert nights.is_open(MONDAY_EVENING)
    assert nights.is_open(SATURDAY_NOON)
    assert nights.next_opening(MONDAY_NOON) == datetime(2026, 11, 23, 19, 0)


def test_the_limiter_follows_a_changing_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    class Clock:
        def __call__(self) -> float:
            return now[0]

    class RecordingStop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            slept.append(timeout or 0.0)
            return False

    rate: list[float | None] = [float(MIB)]
    limiter = RateLimiter(lambda: rate[0], clock=Clock(), stop=RecordingStop(), burst_seconds=0.0)
    limiter.consume(MIB)
    assert slept[-1] == pytest.approx(1.0)
    rate[0] = None  # the timetable switched to 'off'
    assert limiter.consume(100 * MIB) == 0.0

from __future__ import annotations

import pytest
from flightlog.query.timefmt import TimeFormatError, format_ns, parse_ns, parse_time

NOW = 1_795_867_200_123_456_789  # 2026-11-28T12:00:00.123456789Z


@pytest.mark.parametrize(
    "ns, text",
    [
        (0, "1970-01-01T00:00:00.000000000Z"),
        (NOW, "2026-11-28T12:00:00.123456789Z"),
        (1_795_867_200_000_000_001, "2026-11-28T12:00:00.000000001Z"),
    ],
)
def test_format_is_rfc3339_utc_with_nine_digit_nanoseconds(ns, text):
    assert format_ns(ns) == text
    assert parse_ns(text) == ns


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-28T12:00:00Z", 1_795_867_200_000_000_000),
        ("2026-11-28T12:00:00.5Z", 1_795_867_200_500_000_000),
        ("2026-11-28T14:00:00+02:00", 1_795_867_200_000_000_000),
        ("2026-11-28T07:30:00-04:30", 1_795_867_200_000_000_000),
        ("2026-11-28 12:00:00", 1_795_867_200_000_000_000),
        ("2026-11-28T12:00:00.1234567891Z", 1_795_867_200_123_456_789),
        ("now", NOW),
        ("30s", NOW - 30 * 10**9),
        ("15m", NOW - 15 * 60 * 10**9),
        ("2h", NOW - 2 * 3600 * 10**9),
        ("7d", NOW - 7 * 86400 * 10**9),
    ],
)
def test_user_times_are_rfc3339_or_durations_back_from_now(text, expected):
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "15", "2h ago", "2026-13-01T00:00:00Z", "-5m"])
def test_other_times_are_refused(text):
    with pytest.raises(TimeFormatError):
        parse_time(text, NOW)

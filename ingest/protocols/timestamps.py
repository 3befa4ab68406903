"""The times a line may carry: what the store keeps, checked per line before the 2xx.

The engine reads a line's time (flightlog.ingest.insert_sql): an epoch number by its magnitude
(seconds, ms, µs or ns), text with its best-effort parser. Three kinds of time would hurt
after the client was told `accepted`:

- an epoch past what Int64 nanoseconds hold (`99999999999999999999999999`, OTLP's 2^64−1):
  the insert of the line's whole batch fails, again on every retry;
- a time older than the retention, at 1970 or before: the TTL drops the line (and its
  part) right after the insert, while the trail summaries still count it;
- a time past 2106-02-07 less the retention: the TTL is computed in DateTime, which ends
  then, so it wraps to 1970 and the line is dropped as well.

So every parser refuses such a line with its number and the reason, and keeps the others.
"""

from __future__ import annotations

import calendar
import math
import re
import time
from dataclasses import dataclass

from flightlog.ingest.limits import Problem

NS = 1_000_000_000
DAY_NS = 86_400 * NS
# DateTime, the type the TTL is computed in, ends at 2106-02-07 06:28:15 UTC.
TTL_LAST_NS = (2**32 - 1) * NS

# Metric labels of the refusals (flightlog.ingest.metrics).
TOO_OLD = "older_than_retention"
TOO_NEW = "past_latest_time"
NOT_A_TIME = "bad_timestamp"

# RFC 3339 and the ISO 8601 shapes near it; other text is judged by its year (see check).
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz]|UTC)|([+-])(\d\d):?(\d\d))?"
)


@dataclass(frozen=True)
class TimeWindow:
    """The times the store keeps a line for, from `oldest_ns` to `latest_ns` (inclusive)."""

    oldest_ns: int
    latest_ns: int
    retention_days: int
    # 'YYYY-MM-DD' a day inside each bound: an RFC 3339 text whose date lies strictly
    # between them is in the window whatever its clock time and offset (a C-speed test).
    quick_low: str
    quick_high: str

    @classmethod
    def at(cls, now_ns: int, retention_days: int) -> TimeWindow:
        oldest = max(0, now_ns - retention_days * DAY_NS)
        latest = TTL_LAST_NS - retention_days * DAY_NS
        return cls(oldest, latest, retention_days, _day(oldest + DAY_NS), _day(latest - DAY_NS))

    @classmethod
    def now(cls, retention_days: int) -> TimeWindow:
        return cls.at(time.time_ns(), retention_days)

    def check(self, key: str, value: object) -> Problem | None:
        """Why the store cannot keep a line whose time field `key` holds `value`, or None.

        Mirrors the engine: numbers (and numeric text) are epochs with the unit told by
        magnitude; other text must start with a year. Text the engine reads in a shape other
        than RFC 3339 is judged by its year alone."""
        if isinstance(value, bool):
            return Problem(NOT_A_TIME, f"{key} must be a time, got a boolean")
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            try:
                number = float(text)
            except ValueError:
                return self._check_text(key, value, text)
            return self._check_epoch(key, value, number)
        if isinstance(value, (int, float)):
            return self._check_epoch(key, value, value)
        return Problem(NOT_A_TIME, f"{key} must be a string or a number, got {type(value).__name__}")

    def _check_epoch(self, key: str, shown: object, number: float) -> Problem | None:
        if isinstance(number, float) and not math.isfinite(number):
            return Problem(NOT_A_TIME, f"{key} must be a finite number")
        if number < 0:
            return Problem(TOO_OLD, f"{key} {shown!r} is before 1970, the earliest time the store holds")
        return self._check_ns(key, shown, epoch_to_ns(number))

    def _check_text(self, key: str, shown: str, text: str) -> Problem | None:
        ns = iso_to_ns(text)
        if ns is not None:
            return self._check_ns(key, shown, ns)
        if not text[:4].isdigit():
            return Problem(NOT_A_TIME, f"{key} {shown!r} is not a timestamp (RFC 3339 or epoch seconds/ms/µs/ns)")
        year = int(text[:4])
        if year < 1970:
            return Problem(TOO_OLD, f"{key} {shown!r} is before 1970, the earliest time the store holds")
        if year < _year(self.oldest_ns):
            return self._too_old(key, shown)
        if year > _year(self.latest_ns):
            return self._too_new(key, shown)
        return None

    def _check_ns(self, key: str, shown: object, ns: int) -> Problem | None:
        if ns < self.oldest_ns:
            return self._too_old(key, shown, ns)
        if ns > self.latest_ns:
            return self._too_new(key, shown, ns)
        return None

    def _too_old(self, key: str, shown: object, ns: int | None = None) -> Problem:
        return Problem(
            TOO_OLD,
            f"{key} {shown!r}{_meaning(shown, ns)} is older than retention {self.retention_days}d: "
            f"the store keeps lines from {_iso(self.oldest_ns)} on",
        )

    def _too_new(self, key: str, shown: object, ns: int | None = None) -> Problem:
        return Problem(
            TOO_NEW,
            f"{key} {shown!r}{_meaning(shown, ns)} is past {_iso(self.latest_ns)}, the latest time the store "
            f"can keep a line for retention {self.retention_days}d",
        )


def epoch_to_ns(value: float) -> int:
    """Epoch seconds, ms, µs or ns to ns: the unit is decided by magnitude, as in the engine."""
    magnitude = abs(value)
    if magnitude < 1e11:
        return int(value * 1e9)
    if magnitude < 1e14:
        return int(value * 1e6)
    if magnitude < 1e17:
        return int(value * 1e3)
    return int(value)


def iso_to_ns(text: str) -> int | None:
    """An RFC 3339 / ISO 8601 time (no offset: UTC, as the engine reads it) in ns, or None
    when the text has another shape or is no real date."""
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    try:
        seconds = calendar.timegm(
            (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), 0, 0, 0)
        )
    except (ValueError, OverflowError):
        return None
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= calendar.monthrange(int(year), int(month))[1]):
        return None  # timegm rolls 2026-02-30 over into March; the engine refuses it
    if sign:
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds += -offset if sign == "+" else offset
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return seconds * NS + nanos


def _meaning(shown: object, ns: int | None) -> str:
    """` (2026-12-01T10:00:00Z)` after a number, so the client sees which unit it was read in."""
    if ns is None or (isinstance(shown, str) and not _is_number(shown)):
        return ""
    return f" ({_iso(ns)})" if 0 <= ns < 253402300800 * NS else ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // NS))


def _day(ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ns // NS))


def _year(ns: int) -> int:
    return time.gmtime(ns // NS).tm_year

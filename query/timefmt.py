"""Time in and out of the query API.

Timestamps travel as integer nanoseconds since the epoch (what `toUnixTimestamp64Nano(ts)`
returns), are shown as RFC 3339 UTC with nine fractional digits, and are read from users as
RFC 3339 (any fraction, any offset), `now`, or a relative duration back from now (`15m`, `2h`).
"""

from __future__ import annotations

import datetime as dt
import re
import time

NS_PER_S = 1_000_000_000
_UNITS_NS = {
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 7 * 86400 * NS_PER_S,
}
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class TimeFormatError(ValueError):
    """A time the user typed that is neither RFC 3339 nor a relative duration."""


def now_ns() -> int:
    return time.time_ns()


def format_ns(ns: int) -> str:
    """`1795867200123456789` → `2026-11-28T12:00:00.123456789Z`."""
    seconds, frac = divmod(int(ns), NS_PER_S)
    whole = _EPOCH + dt.timedelta(seconds=seconds)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_ns(text: str) -> int:
    """An RFC 3339 timestamp (a missing offset means UTC) → nanoseconds since the epoch."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise TimeFormatError(f"{text!r} is not an RFC 3339 time like 2026-11-28T12:00:00Z")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        base = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=dt.UTC)
    except ValueError as exc:
        raise TimeFormatError(f"{text!r} is not a valid time: {exc}") from None
    if offset and offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        base -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    seconds = (base - _EPOCH) // dt.timedelta(seconds=1)
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    return seconds * NS_PER_S + nanos


def parse_time(text: str, now: int | None = None) -> int:
    """A user's time bound: RFC 3339, `now`, or a duration back from now (`30s 15m 2h 7d 1w`)."""
    text = text.strip()
    now = now_ns() if now is None else now
    if text == "now":
        return now
    match = _RELATIVE.match(text)
    if match:
        return now - int(match.group(1)) * _UNITS_NS[match.group(2)]
    try:
        return parse_ns(text)
    except TimeFormatError:
        raise TimeFormatError(
            f"{text!r} is neither an RFC 3339 time (2026-11-28T12:00:00Z) nor a duration back from now (15m, 2h, 7d)"
        ) from None

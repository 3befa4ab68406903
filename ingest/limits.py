"""Limits on what one request may carry (the refusals when it goes past them are flightlog.schema.refusal)."""

from __future__ import annotations

from dataclasses import dataclass

from flightlog.schema.settings import Settings

MAX_ERRORS_LISTED = 100
DEFAULT_RETENTION_DAYS = Settings.retention_days


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_line_bytes: int
    max_attributes: int
    # Lines older than this are refused: the store's TTL would drop them right after the 2xx.
    retention_days: int = DEFAULT_RETENTION_DAYS

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_body_bytes, settings.max_line_bytes, settings.max_attributes, settings.retention_days)


@dataclass(frozen=True)
class Problem:
    """Why one line is refused: `reason` is the metric label (flightlog.ingest.metrics),
    `message` what the client reads next to the line's number."""

    reason: str
    message: str

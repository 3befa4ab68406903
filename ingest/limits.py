"""Limits on what one request may carry (the refusals when it goes past them are flightlog.schema.refusal)."""

from __future__ import annotations

from dataclasses import dataclass

from flightlog.schema.settings import Settings

MAX_ERRORS_LISTED = 100


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_line_bytes: int
    max_attributes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_body_bytes, settings.max_line_bytes, settings.max_attributes)

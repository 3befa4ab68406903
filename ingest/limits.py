"""Limits on what one request may carry, and the errors a client reads when it goes past them."""

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


class IngestError(Exception):
    """The request as a whole is refused; status and message go back to the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

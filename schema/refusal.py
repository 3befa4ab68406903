"""The one way ingest and query say no: a status, a reason code, a message, maybe a wait.

Services raise `Refusal`; the web shell maps it to an HTTP answer in one place
(flightlog.web.errors), protocol handlers put `message` in their protocol's own shape, and
every answer that carries a wait gets its `Retry-After` from `retry_after_header`. Metric
labels are the reason codes, never the wording of a message.
"""

from __future__ import annotations

import math
from typing import Any

# The reason code a refusal gets when the raiser names none, by status.
DEFAULT_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    408: "body_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "internal",
    503: "unavailable",
}


class Refusal(Exception):
    """A request refused as a whole; `message` says what to change, `retry_after` when to retry."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or DEFAULT_REASONS.get(status, "refused")
        self.retry_after = retry_after
        self.details = details

    def headers(self) -> dict[str, str]:
        """HTTP headers this refusal needs: `Retry-After` for a wait, or for any 429/503."""
        wait = self.retry_after
        if wait is None and self.status in (429, 503):
            wait = 1
        return retry_after_header(wait) if wait is not None else {}


def retry_after_header(seconds: float) -> dict[str, str]:
    """The one place `Retry-After` is written: whole seconds, rounded up, at least one."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}

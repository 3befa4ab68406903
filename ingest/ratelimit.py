"""Limits per API key: requests per second and lines per second, answered 429 + Retry-After.

Token buckets held in memory, one pair per key. The request bucket holds one second's worth
of requests. The line bucket runs on debt: a request is let in while the bucket is not empty
and is then charged all its lines (possibly going below zero), so a batch bigger than a
second's allowance still goes through once, and the key then waits until the debt is paid.
That keeps big, efficient batches possible while holding the average to the limit.

The auth middleware (flightlog.web.auth) checks the request bucket and puts the key in a
context variable; `deliver()` charges the parsed lines through `charge_lines`, so every
protocol is limited alike. Lines from the syslog listeners carry no key and are not limited here.
"""

from __future__ import annotations

import contextvars
import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from flightlog.schema.refusal import Refusal


@dataclass
class Bucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, n: float, now: float | None = None) -> float:
        """Take n tokens; → 0 when allowed, else the seconds until it would be."""
        self._refill(time.monotonic() if now is None else now)
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate

    def take_on_debt(self, n: float, now: float | None = None) -> float:
        """Allowed while not in debt; the whole of n is charged. → 0 or seconds to wait."""
        self._refill(time.monotonic() if now is None else now)
        if self.tokens <= 0:
            return (1 - self.tokens) / self.rate
        self.tokens -= n
        return 0.0


class RateLimiter:
    def __init__(self, lines_per_second: int, requests_per_second: int) -> None:
        self.lines_per_second = lines_per_second
        self.requests_per_second = requests_per_second
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def _bucket(self, key_id: str, kind: str, rate: int) -> Bucket:
        bucket = self._buckets.get((key_id, kind))
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[(key_id, kind)] = Bucket(rate, max(rate, 1))
        return bucket

    def check_request(self, key: Any) -> float:
        rate = key.requests_per_second or self.requests_per_second
        if rate <= 0:
            return 0.0
        return self._bucket(key.id, "requests", rate).take(1)

    def charge_lines(self, key: Any, count: int) -> float:
        rate = key.lines_per_second or self.lines_per_second
        if rate <= 0 or count <= 0:
            return 0.0
        return self._bucket(key.id, "lines", rate).take_on_debt(count)


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


@dataclass
class KeyContext:
    """What the auth middleware knows about the request being handled, for `charge_lines`."""

    key: Any
    limiter: RateLimiter
    retry_after: int | None = None


CURRENT: contextvars.ContextVar[KeyContext | None] = contextvars.ContextVar("flightlog_key", default=None)


def charge_lines(count: int) -> None:
    """Charge the current request's key for `count` lines; a 429 Refusal when over."""
    context = CURRENT.get()
    if context is None or context.key is None:
        return
    wait = context.limiter.charge_lines(context.key, count)
    if wait:
        error = Refusal(
            429,
            f"key {context.key.id} is over its limit of lines per second; retry after the Retry-After seconds",
            reason="key_lines_per_second",
            retry_after=max(1, math.ceil(wait)),
        )
        context.retry_after = error.retry_after
        raise error

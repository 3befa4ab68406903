"""Deliver notifications without ever blocking the caller: one bounded queue per destination.

`submit` never waits: the item joins its destination's queue (when full, the oldest item is
dropped and counted). Each destination has its own worker, so a webhook that hangs or answers
500 only delays its own messages, never another channel's, an evaluation or ingest. A send is
retried with exponential backoff (honouring `Retry-After`, as Slack's 429 asks) up to
`max_attempts`; the outcome is counted per channel and the last failure is kept per rule so the
alerts page can show it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

log = logging.getLogger("flightlog.alerts")

QUEUE_SIZE = 1000
SEND_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 6
BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0
MAX_RETRY_AFTER_S = 300.0


class SendFailed(Exception):
    """A delivery attempt failed; `retry_after` (seconds) when the receiver said when to retry,
    `permanent` when retrying cannot help (a 4xx other than 408/429)."""

    def __init__(self, message: str, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Sender(Protocol):
    kind: str  # "alertmanager" | "slack" | "webhook" | "apprise"
    key: str  # one queue per key

    async def send(self, session: aiohttp.ClientSession, item: Any) -> None: ...


@dataclass
class Delivery:
    sender: Sender
    item: Any
    tenant: str
    rule: str
    on_done: Callable[[str | None], Awaitable[None] | None] | None = None


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (HTTP-date forms are rare from webhooks: treated as absent)."""
    if not value:
        return None
    try:
        return min(max(float(value.strip()), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None


async def check_response(response: aiohttp.ClientResponse) -> None:
    """Raise SendFailed for anything but a 2xx, with what the receiver said."""
    if 200 <= response.status < 300:
        return
    text = (await response.text(errors="replace"))[:300]
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    permanent = 400 <= response.status < 500 and response.status not in (408, 425, 429)
    raise SendFailed(f"HTTP {response.status}: {text}", retry_after, permanent)


class Dispatcher:
    def __init__(
        self,
        *,
        queue_size: int = QUEUE_SIZE,
        timeout_s: float = SEND_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._kinds: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (channel kind, sent|failed|dropped|retried)
        self.rule_errors: dict[tuple[str, str], tuple[str, str, float]] = {}  # (tenant, rule) → (channel, error, when)
        self._closed = False

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def stop(self) -> None:
        self._closed = True
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def queued(self) -> dict[str, int]:
        """Items waiting per channel kind (a gauge on /metrics)."""
        depth: Counter[str] = Counter()
        for key, queue in self._queues.items():
            depth[self._kinds[key]] += queue.qsize()
        return dict(depth)

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery; never waits. A full queue drops its oldest item."""
        if self._closed:
            return
        key = delivery.sender.key
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(self.queue_size)
            self._kinds[key] = delivery.sender.kind
            self._workers[key] = asyncio.create_task(self._work(queue), name=f"notify {delivery.sender.kind}")
        if queue.full():
            queue.get_nowait()
            self.outcomes[(delivery.sender.kind, "dropped")] += 1
        queue.put_nowait(delivery)

    async def send_now(self, sender: Sender, item: Any) -> str | None:
        """One attempt, now, bypassing the queue (the "send test notification" button):
        None when delivered, else the reason."""
        try:
            await self._attempt(sender, item)
        except SendFailed as exc:
            return str(exc)
        return None

    async def _attempt(self, sender: Sender, item: Any) -> None:
        assert self._session is not None, "Dispatcher.start() first"
        try:
            async with asyncio.timeout(self.timeout_s):
                await sender.send(self._session, item)
        except SendFailed:
            raise
        except TimeoutError:
            raise SendFailed(f"no answer within {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}") from None

    async def _work(self, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            error = await self._deliver(delivery)
            kind = delivery.sender.kind
            self.outcomes[(kind, "sent" if error is None else "failed")] += 1
            rule_key = (delivery.tenant, delivery.rule)
            if error is None:
                self.rule_errors.pop(rule_key, None)
            else:
                log.warning("alert %s/%s: %s delivery failed: %s", delivery.tenant, delivery.rule, kind, error)
                self.rule_errors[rule_key] = (kind, error, time.time())
            if delivery.on_done is not None:
                result = delivery.on_done(error)
                if asyncio.iscoroutine(result):
                    await result

    async def _deliver(self, delivery: Delivery) -> str | None:
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._attempt(delivery.sender, delivery.item)
                return None
            except SendFailed as exc:
                if exc.permanent or attempt == self.max_attempts:
                    return str(exc)
                self.outcomes[(delivery.sender.kind, "retried")] += 1
                wait = exc.retry_after if exc.retry_after is not None else delay
                delay = min(delay * 2, self.max_backoff_s)
                await asyncio.sleep(wait)
        return "no attempt made"

"""Query slots: every tenant (and key) gets a fair share of the store's query threads.

Measured before: one tenant's 10 concurrent slow queries held every thread of the store pool,
and another tenant's 16 ms search took 14 s. Now every store call a query route makes (search,
export, histogram, facets, trails, context, hosts, SQL, tail's catch-up, the pages) holds a slot
while it runs:

- at most `query_slots` run at once (the thread pool has that many threads, plus a few for
  calls that hold no slot: /readyz and tail's one poller), at most `query_slots_per_tenant` of
  them for one tenant and `query_slots_per_key` for one key or UI login — so no tenant can hold
  every thread;
- a query past its share, or past the total, waits up to `query_slot_wait_ms` (a page's or a
  dashboard's burst of quick queries queues instead of failing); when a slot frees, the waiter
  whose tenant runs the fewest queries gets it, so a busy tenant cannot crowd out a quiet one;
- a query still waiting after that is answered 429 "too many concurrent queries" with
  `Retry-After`, which Grafana, Loki and ClickHouse clients know to retry.

A slot is released when the store call really ends, not when the request does: a client that
hangs up does not stop a query in chDB, so its slot stays taken until the thread is free.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from flightlog.schema.refusal import Refusal
from flightlog.schema.settings import Settings

RETRY_AFTER_SECONDS = 1
# Threads beyond the slots, for store calls that hold none (/readyz, tail's poller).
SPARE_THREADS = 2


class TooManyQueries(Refusal):
    """429: the caller's share of query slots (or all of them) stayed taken for the whole wait."""

    def __init__(self, message: str) -> None:
        super().__init__(429, message, reason="too_many_queries", retry_after=RETRY_AFTER_SECONDS)


@dataclass(eq=False)
class _Waiter:
    tenant: str
    key: str | None
    order: int
    future: asyncio.Future = field(repr=False)


class QuerySlots:
    """Slots counted per tenant and per key; used from the event loop only (threads hand their
    release over with `loop.call_soon_threadsafe`)."""

    def __init__(self, total: int, per_tenant: int, per_key: int, wait_seconds: float, noun: str = "queries") -> None:
        self.noun = noun
        self.total = total
        self.per_tenant = min(per_tenant, total)
        self.per_key = min(per_key, self.per_tenant)
        self.wait_seconds = wait_seconds
        self.running = 0
        self.by_tenant: Counter[str] = Counter()
        self.by_key: Counter[str] = Counter()
        self.refused = 0
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()

    @classmethod
    def from_settings(cls, settings: Settings) -> QuerySlots:
        return cls(
            settings.query_slots,
            settings.query_slots_per_tenant,
            settings.query_slots_per_key,
            settings.query_slot_wait_ms / 1000,
        )

    def _fits(self, tenant: str, key: str | None) -> bool:
        return (
            self.running < self.total
            and self.by_tenant[tenant] < self.per_tenant
            and (key is None or self.by_key[key] < self.per_key)
        )

    def _take(self, tenant: str, key: str | None) -> None:
        self.running += 1
        self.by_tenant[tenant] += 1
        if key is not None:
            self.by_key[key] += 1

    async def acquire(self, tenant: str, key: str | None) -> Callable[[], None]:
        """Wait for a slot; → the function that gives it back (call it once, on the loop)."""
        # Nobody jumps the queue: a newcomer takes a free slot only if no waiter could use it.
        if self._fits(tenant, key) and not any(self._fits(w.tenant, w.key) for w in self._waiters):
            self._take(tenant, key)
            return self._releaser(tenant, key)
        if self.wait_seconds <= 0:
            return self._refuse(tenant, key)
        waiter = _Waiter(tenant, key, next(self._order), asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            # shielded: a timeout must not cancel a grant made in the same instant
            await asyncio.wait_for(asyncio.shield(waiter.future), self.wait_seconds)
        except TimeoutError:
            if not self._abandon(waiter):
                return self._releaser(tenant, key)  # granted as the wait ended
            return self._refuse(tenant, key)
        except asyncio.CancelledError:
            if not self._abandon(waiter):
                self._release(tenant, key)
            raise
        return self._releaser(tenant, key)

    def _abandon(self, waiter: _Waiter) -> bool:
        """Stop waiting; False if the slot was granted meanwhile (the waiter holds it)."""
        if waiter.future.done():
            return False
        waiter.future.cancel()
        self._waiters.remove(waiter)
        return True

    def _refuse(self, tenant: str, key: str | None) -> Callable[[], None]:
        self.refused += 1
        raise TooManyQueries(self._refusal(tenant, key))

    def _refusal(self, tenant: str, key: str | None) -> str:
        if self.by_tenant[tenant] >= self.per_tenant:
            why = f"this tenant already runs {self.by_tenant[tenant]} {self.noun} at once, its share of the server"
        elif key is not None and self.by_key[key] >= self.per_key:
            why = f"this key already runs {self.by_key[key]} {self.noun} at once, its share of the server"
        else:
            why = f"the server already runs {self.running} {self.noun} at once"
        return f"too many concurrent {self.noun}: {why}; retry after {RETRY_AFTER_SECONDS} s (Retry-After)"

    def _releaser(self, tenant: str, key: str | None) -> Callable[[], None]:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(tenant, key)

        return release

    def _release(self, tenant: str, key: str | None) -> None:
        self.running -= 1
        self.by_tenant[tenant] -= 1
        if not self.by_tenant[tenant]:
            del self.by_tenant[tenant]
        if key is not None:
            self.by_key[key] -= 1
            if not self.by_key[key]:
                del self.by_key[key]
        self._grant()

    def _grant(self) -> None:
        # The quietest tenant first, then the quietest key, then the longest waiting.
        for waiter in sorted(
            self._waiters, key=lambda w: (self.by_tenant[w.tenant], self.by_key[w.key] if w.key else 0, w.order)
        ):
            if self._fits(waiter.tenant, waiter.key):
                self._waiters.remove(waiter)
                self._take(waiter.tenant, waiter.key)
                waiter.future.set_result(None)

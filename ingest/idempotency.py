"""`Idempotency-Key`: a retried ingest request is stored once.

A client sends the same key (any text up to MAX_KEY_CHARS) with every try of one batch. Per
tenant, the first request with a key runs; one arriving while it runs waits for it; once it
stored its lines, every later one gets the same answer (with `Idempotent-Replayed: true`)
and stores nothing. A request that stored nothing (refused, 429, 503) forgets its key, so
its retry runs. Keys live in a bounded map for KEY_TTL seconds; each is also written in its
chunk's WAL header, so after a crash the replay remembers the requests it still holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from flightlog.schema.app_state import tenant_of

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 200
KEY_TTL = 3600.0
MAX_KEYS = 100_000
_SKIPPED_HEADERS = frozenset({"content-length", "date", "server", "transfer-encoding"})


@dataclass
class _Entry:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    answer: tuple[int, bytes, dict[str, str]] | None = None
    expires: float = 0.0


class IdempotencyKeys:
    def __init__(self, ttl: float = KEY_TTL, max_keys: int = MAX_KEYS) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.replayed = 0  # answers given again without storing

    def _expire(self) -> None:
        now = time.monotonic()
        while self._entries:
            ident, entry = next(iter(self._entries.items()))
            if entry.answer is None or (entry.expires > now and len(self._entries) <= self.max_keys):
                break
            del self._entries[ident]

    def get(self, ident: tuple[str, str]) -> _Entry | None:
        self._expire()
        return self._entries.get(ident)

    def begin(self, ident: tuple[str, str]) -> _Entry:
        entry = self._entries[ident] = _Entry()
        return entry

    def finish(self, ident: tuple[str, str], answer: tuple[int, bytes, dict[str, str]]) -> None:
        entry = self._entries.pop(ident)
        entry.answer, entry.expires = answer, time.monotonic() + self.ttl
        self._entries[ident] = entry  # newest last: expiry walks from the front
        entry.done.set()

    def abandon(self, ident: tuple[str, str]) -> None:
        entry = self._entries.pop(ident, None)
        if entry is not None:
            entry.done.set()

    def remember_stored(self, tenant: str, key: str, lines: int) -> None:
        """A request found in the WAL at start: its lines are stored; answer a retry with that."""
        body = orjson.dumps({"accepted": lines, "rejected": 0, "errors": []})
        self.finish_new((tenant, key), (200, body, {"Content-Type": "application/json"}))

    def finish_new(self, ident: tuple[str, str], answer: tuple[int, bytes, dict[str, str]]) -> None:
        self.begin(ident)
        self.finish(ident, answer)


IDEMPOTENCY = web.AppKey("idempotency_keys", IdempotencyKeys)


@dataclass
class _Current:
    key: str
    delivered: bool = False


_CURRENT: contextvars.ContextVar[_Current | None] = contextvars.ContextVar("idempotency_current", default=None)


def key_for_chunk() -> str:
    """The Idempotency-Key of the request being handled ('' if none)."""
    current = _CURRENT.get()
    return "" if current is None else current.key


def mark_stored() -> None:
    """The request's lines are in the WAL: from now on its answer is the one to repeat."""
    current = _CURRENT.get()
    if current is not None:
        current.delivered = True


def idempotent(handler):
    """Wrap an ingest handler so requests carrying an Idempotency-Key are stored once."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        key = request.headers.get(HEADER, "").strip()
        if not key:
            return await handler(request)
        if len(key) > MAX_KEY_CHARS:
            return web.json_response({"error": f"{HEADER} is longer than {MAX_KEY_CHARS} characters"}, status=400)
        keys = request.app[IDEMPOTENCY]
        ident = (tenant_of(request), key)
        while (entry := keys.get(ident)) is not None:
            if entry.answer is not None:
                keys.replayed += 1
                status, body, headers = entry.answer
                return web.Response(body=body, status=status, headers={**headers, "Idempotent-Replayed": "true"})
            await entry.done.wait()  # the first try is still running: its outcome decides
        keys.begin(ident)
        current = _Current(key)
        token = _CURRENT.set(current)
        try:
            response = await handler(request)
        except BaseException:
            keys.abandon(ident)
            raise
        finally:
            _CURRENT.reset(token)
        if current.delivered and isinstance(response, web.Response):
            headers = {k: v for k, v in response.headers.items() if k.lower() not in _SKIPPED_HEADERS}
            keys.finish(ident, (response.status, response.body or b"", headers))
        else:
            keys.abandon(ident)
        return response

    return wrapper

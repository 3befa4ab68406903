"""The client side of /api/v1/logs: batch rows, gzip them, POST them, retry what can be retried.

Used by `flightlog send` (which blocks its reader when the queue is full: nothing is lost) and
by `flightlog.ingest.logging_handler` (which never blocks its caller: a full queue drops and
counts). Standard library only, so a service can use the handler without aiohttp.
"""

from __future__ import annotations

import gzip
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_STOP = object()


class Shipper:
    def __init__(
        self,
        url: str,
        defaults: Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
        batch_lines: int = 1000,
        batch_bytes: int = 1 << 20,
        batch_seconds: float = 1.0,
        max_queue: int = 10_000,
        block: bool = True,
        max_retry_seconds: float = 60.0,
        timeout: float = 10.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        base = url.rstrip("/")
        if not base.endswith("/api/v1/logs"):
            base += "/api/v1/logs"
        query = urlencode({k: v for k, v in (defaults or {}).items() if v})
        self.endpoint = f"{base}?{query}" if query else base
        self.headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.batch_lines = batch_lines
        self.batch_bytes = batch_bytes
        self.batch_seconds = batch_seconds
        self.block = block
        self.max_retry_seconds = max_retry_seconds
        self.timeout = timeout
        self.on_error = on_error or (lambda message: None)
        self.sent = 0  # lines the server acknowledged
        self.failed = 0  # lines given up on (refused, or retries ran out)
        self.dropped = 0  # lines never queued (queue full, non-blocking mode)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="flightlog-shipper", daemon=True)
        self._thread.start()

    def put(self, row: Mapping[str, Any]) -> bool:
        """Queue one row (canonical keys); False when it was dropped."""
        line = orjson.dumps(row, default=str)
        if self.block:
            self._queue.put(line)
            return True
        try:
            self._queue.put_nowait(line)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued row was sent or given up on."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    @property
    def undelivered(self) -> int:
        return self.failed + self.dropped

    def _run(self) -> None:
        batch: list[bytes] = []
        size = 0
        started = 0.0
        while True:
            wait = None if not batch else max(0.0, started + self.batch_seconds - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, bytes):
                if not batch:
                    started = time.monotonic()
                batch.append(item)
                size += len(item) + 1
                if len(batch) < self.batch_lines and size < self.batch_bytes:
                    continue
            if batch:
                self._send(batch)
                batch, size = [], 0
            if isinstance(item, threading.Event):
                item.set()
            elif item is _STOP:
                return

    def _send(self, lines: list[bytes]) -> None:
        body = gzip.compress(b"\n".join(lines), compresslevel=5)
        # One key per batch, the same on every retry: a try that was stored but whose answer
        # was lost is not stored again (flightlog.ingest.idempotency).
        key = uuid.uuid4().hex
        deadline = time.monotonic() + self.max_retry_seconds
        delay = 0.5
        while True:
            status, retry_after, detail = self._post(body, key)
            if 200 <= status < 300:
                self.sent += len(lines)
                return
            retryable = status == 0 or status in RETRY_STATUSES
            wait = retry_after if retry_after is not None else delay
            if not retryable or time.monotonic() + wait > deadline:
                self.failed += len(lines)
                why = f"HTTP {status}" if status else "no connection"
                self.on_error(f"{len(lines)} lines not delivered ({why}): {detail}")
                return
            time.sleep(wait)
            delay = min(delay * 2, 30.0)

    def _post(self, body: bytes, key: str) -> tuple[int, float | None, str]:
        headers = {**self.headers, "Idempotency-Key": key}
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
                return response.status, None, ""
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            return exc.code, _retry_after(exc.headers.get("Retry-After")), detail
        except (urllib.error.URLError, OSError) as exc:
            return 0, None, str(getattr(exc, "reason", exc))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None

"""A fault-injecting wrapper around a real store: inserts fail (or crawl) while told to."""

from __future__ import annotations

import threading
import time
from typing import Any

from flightlog.schema.store import StoreError


class FlakyStore:
    """Delegates to `inner`; `insert_lines` raises while `failing` is set, and sleeps
    `insert_delay` seconds first (a store slower than the sender)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.failing = threading.Event()
        self.insert_delay = 0.0
        self.failures = 0
        self.inserts = 0

    @property
    def kind(self) -> str:
        return self.inner.kind

    def insert_lines(self, *args: Any, **kwargs: Any) -> None:
        if self.insert_delay:
            time.sleep(self.insert_delay)
        if self.failing.is_set():
            self.failures += 1
            raise StoreError("Code: 210. Connection refused (injected fault)", 210)
        self.inner.insert_lines(*args, **kwargs)
        self.inserts += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

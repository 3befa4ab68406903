"""A disk that fills up: the WAL's `os` with a `write` that stops part-way with ENOSPC."""

from __future__ import annotations

import errno
import os
from typing import Any


class FullDisk:
    """Stands in for the `os` module inside flightlog.ingest.wal. While `full`, a write puts
    half its bytes on disk and then fails with ENOSPC (what a filling disk does); with
    `truncate_fails`, cutting the file back fails too (a torn write that stays)."""

    def __init__(self) -> None:
        self.full = False
        self.truncate_fails = False
        self.failed_writes = 0

    def write(self, fd: int, data: Any) -> int:
        if not self.full:
            return os.write(fd, data)
        self.failed_writes += 1
        half = len(data) // 2
        if half:
            os.write(fd, bytes(data[:half]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def ftruncate(self, fd: int, size: int) -> None:
        if self.full and self.truncate_fails:
            raise OSError(errno.ENOSPC, "No space left on device")
        os.ftruncate(fd, size)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

"""Run blocking store calls off the event loop (chDB and clickhouse-connect block)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

_store_threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="store")


async def run_in_store_thread(fn, *args, **kwargs):
    """Run `fn(*args, **kwargs)` in the store's thread pool and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_store_threads, lambda: fn(*args, **kwargs))

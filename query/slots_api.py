"""Query slots for HTTP callers: the app's slots and store threads, and `run_query`, which every
query route and page uses to run a store call in its caller's slot (flightlog.query.slots)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from flightlog.query.slots import SPARE_THREADS, QuerySlots
from flightlog.schema.app_state import tenant_of
from flightlog.schema.settings import Settings

T = TypeVar("T")


QUERY_SLOTS = web.AppKey("query_slots", QuerySlots)
STORE_THREADS = web.AppKey("store_threads", ThreadPoolExecutor)


def setup_query_slots(app: web.Application, settings: Settings) -> None:
    """The app's slots and the thread pool they guard (one per app, shut down with it)."""
    app[QUERY_SLOTS] = QuerySlots.from_settings(settings)
    app[STORE_THREADS] = ThreadPoolExecutor(
        max_workers=settings.query_slots + SPARE_THREADS, thread_name_prefix="store"
    )

    async def shutdown(app: web.Application) -> None:
        app[STORE_THREADS].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)


def caller_key(request: web.Request) -> str | None:
    """What the per-key share counts: the API key (a UI login counts as its key), else nothing."""
    key = request.get("key")
    return f"{tenant_of(request)}/{getattr(key, 'id', '')}" if key is not None else None


async def acquire_slot(request: web.Request) -> Callable[[], None]:
    """A slot for the caller of `request` (see QuerySlots.acquire)."""
    slots = request.app.get(QUERY_SLOTS)
    if slots is None:
        return lambda: None
    return await slots.acquire(tenant_of(request), caller_key(request))


def release_from_thread(loop: asyncio.AbstractEventLoop, release: Callable[[], None]) -> None:
    """Give a slot back from a worker thread (the slots live on the event loop)."""
    try:
        loop.call_soon_threadsafe(release)
    except RuntimeError:  # the loop is closed: the app, and its slots, are gone
        pass


async def run_query(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call for `request`'s caller in a query slot, off the event loop."""
    release = await acquire_slot(request)
    loop = asyncio.get_running_loop()
    try:
        future: Future = store_executor(request.app).submit(fn, *args, **kwargs)
    except BaseException:
        release()
        raise
    # Released when the call ends, even if the request is gone by then (chDB runs on).
    future.add_done_callback(lambda _: release_from_thread(loop, release))
    return await asyncio.wrap_future(future)


_fallback_threads: ThreadPoolExecutor | None = None


def store_executor(app: web.Application) -> ThreadPoolExecutor:
    """The app's store thread pool (a shared one for an app built without query slots)."""
    global _fallback_threads
    executor = app.get(STORE_THREADS)
    if executor is not None:
        return executor
    if _fallback_threads is None:
        _fallback_threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="store")
    return _fallback_threads
